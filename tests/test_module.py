import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model_config
from test_classifier import VARIANTS

from convperceiver.config import OptimConfig
from convperceiver.engine.module import build_optimizer, lr_factor
from convperceiver.models import build_model


def one_step(model, optimizer, clip):
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss = F.cross_entropy(model(clip), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    return {name: not torch.equal(before[name], p) for name, p in model.named_parameters()}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_every_trainable_parameter_is_optimized_and_moves(variant, optimizer, tiny_clip):
    torch.manual_seed(0)
    model = build_model(tiny_model_config(**VARIANTS[variant]), num_classes=5)
    opt = build_optimizer(model, OptimConfig(optimizer=optimizer, lr=1e-2, weight_decay=0.0))
    in_optimizer = {id(p) for group in opt.param_groups for p in group["params"]}
    assert {id(p) for p in model.parameters()} == in_optimizer
    moved = one_step(model, opt, tiny_clip)
    assert [name for name, changed in moved.items() if not changed] == []


def test_frozen_cross_attention_stays_at_its_initialisation(tiny_clip):
    torch.manual_seed(0)
    model = build_model(tiny_model_config(freeze_cross_attention=True), num_classes=5)
    opt = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.0))
    moved = one_step(model, opt, tiny_clip)
    unchanged = {name for name, changed in moved.items() if not changed}
    assert unchanged == {
        name
        for name, _ in model.named_parameters()
        if name == "latents" or name.startswith("cross_blocks.")
    }
    assert len(unchanged) > 5


def test_cnn_and_attention_get_their_own_learning_rates():
    model = build_model(tiny_model_config(), num_classes=5)
    opt = build_optimizer(model, OptimConfig(lr=1e-3, cnn_lr=1e-4))
    rates = {group["name"]: group["lr"] for group in opt.param_groups}
    assert rates == {"cnn": 1e-4, "attention": 1e-3}
    cnn = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in opt.param_groups[0]["params"]} == cnn


def test_frozen_cnn_is_left_out_of_the_optimizer():
    model = build_model(tiny_model_config(freeze_cnn_blocks=-1), num_classes=5)
    opt = build_optimizer(model, OptimConfig())
    assert [group["name"] for group in opt.param_groups] == ["attention"]


def test_warmup_then_cosine_and_step_schedules():
    cosine = OptimConfig(scheduler="cosine", warmup_epochs=1)
    factors = [lr_factor(s, optim=cosine, steps_per_epoch=10, total_steps=30) for s in range(31)]
    assert factors[0] == pytest.approx(0.01)
    assert factors[5] == pytest.approx(0.01 + 0.99 * 0.5)
    assert factors[10] == pytest.approx(1.0)
    assert factors[20] == pytest.approx(0.5)
    assert factors[30] == pytest.approx(0.0, abs=1e-9)
    step = OptimConfig(scheduler="step", step_size=2, gamma=0.2)
    assert [
        lr_factor(s, optim=step, steps_per_epoch=10, total_steps=60) for s in (0, 19, 20, 45)
    ] == pytest.approx([1.0, 1.0, 0.2, 0.04])


def test_fused_adamw_takes_the_same_step_as_the_default_one(tiny_clip):
    torch.manual_seed(0)
    template = build_model(tiny_model_config(), num_classes=5)
    stepped = {}
    for fused in (True, False):
        model = copy.deepcopy(template)
        optimizer = build_optimizer(model, OptimConfig(lr=1e-2), fused=fused)
        assert all(group["fused"] is fused for group in optimizer.param_groups)
        one_step(model, optimizer, tiny_clip)
        stepped[fused] = dict(model.named_parameters())
    for name, parameter in stepped[True].items():
        torch.testing.assert_close(parameter, stepped[False][name], msg=name)


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_module_runs_its_cnn_in_the_configured_memory_format(channels_last):
    from convperceiver.config import load_config
    from convperceiver.engine.module import VideoClassifierModule

    torch.manual_seed(0)
    model = build_model(tiny_model_config(), num_classes=5).eval()
    reference = copy.deepcopy(model)
    config = load_config(overrides=[f"trainer.channels_last={channels_last}"])
    module = VideoClassifierModule(model=model, config=config, class_names=list("abcde"))
    features = {}
    module.model.backbone.register_forward_hook(lambda m, i, out: features.update(out=out))
    clip = torch.randn(2, 3, 4, 32, 32)  # channels-first, as the loader collates it
    logits = module(clip)
    fmt = torch.channels_last_3d
    weights = [m.weight for m in module.model.backbone.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(w.is_contiguous(memory_format=fmt) == channels_last for w in weights)
    assert features["out"].is_contiguous(memory_format=fmt) == channels_last
    torch.testing.assert_close(logits, reference(clip), rtol=1e-4, atol=1e-5)
