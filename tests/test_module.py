import copy

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model_config
from test_classifier import VARIANTS
from torch.utils.data import DataLoader

from convperceiver.config import OptimConfig
from convperceiver.engine.module import VideoClassifierModule
from convperceiver.engine.optim import build_optimizer, lr_factor
from convperceiver.models import build_model

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


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
    assert rates == {
        "cnn": 1e-4,
        "cnn.no_decay": 1e-4,
        "attention": 1e-3,
        "attention.no_decay": 1e-3,
    }
    in_cnn_groups = {
        id(p)
        for group in opt.param_groups
        if group["name"].startswith("cnn")
        for p in group["params"]
    }
    assert in_cnn_groups == {id(p) for p in model.backbone.parameters()}


def test_the_seed_recipe_decays_every_parameter():
    model = build_model(tiny_model_config(), num_classes=5)
    opt = build_optimizer(model, OptimConfig(weight_decay=1e-5, decay_everything=True))
    assert {group["weight_decay"] for group in opt.param_groups} == {1e-5}


def test_frozen_cnn_is_left_out_of_the_optimizer():
    model = build_model(tiny_model_config(freeze_cnn_blocks=-1), num_classes=5)
    opt = build_optimizer(model, OptimConfig())
    assert [group["name"] for group in opt.param_groups] == ["attention", "attention.no_decay"]


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


def tiny_module(**overrides) -> VideoClassifierModule:
    torch.manual_seed(0)
    arguments = dict(
        model=build_model(tiny_model_config(), num_classes=5),
        class_names=list("abcde"),
        mean=MEAN,
        std=STD,
        optim=OptimConfig(lr=1e-2),
        channels_last=False,
        run_config={"model": {"cnn_blocks": 2}},
    )
    return VideoClassifierModule(**{**arguments, **overrides})


def uint8_clips(batch: int, *, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 4, 32, 32, 3), dtype=torch.uint8, generator=generator)


def as_loader(batches: list[dict]) -> DataLoader:
    """Ready-made batches, yielded as they are."""
    return DataLoader(batches, batch_size=None)


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_module_runs_its_cnn_in_the_configured_memory_format(channels_last):
    torch.manual_seed(0)
    model = build_model(tiny_model_config(), num_classes=5).eval()
    reference = copy.deepcopy(model)
    module = tiny_module(model=model, channels_last=channels_last)
    features = {}
    module.model.backbone.register_forward_hook(lambda m, i, out: features.update(out=out))
    clip = torch.randn(2, 3, 4, 32, 32)  # channels-first, as normalisation lays it out
    logits = module(clip)
    fmt = torch.channels_last_3d
    weights = [m.weight for m in module.model.backbone.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(w.is_contiguous(memory_format=fmt) == channels_last for w in weights)
    assert features["out"].is_contiguous(memory_format=fmt) == channels_last
    torch.testing.assert_close(logits, reference(clip), rtol=1e-4, atol=1e-5)


def test_batches_are_normalised_on_the_device_after_transfer():
    module = tiny_module()
    clips = uint8_clips(2)
    batch = module.on_after_batch_transfer({"clip": clips.clone(), "label": torch.ones(2)}, 0)
    normalised = batch["clip"]
    assert normalised.dtype == torch.float32 and normalised.shape == (2, 3, 4, 32, 32)
    b, t, y, x = 1, 2, 5, 7
    for channel in range(3):
        pixel = clips[b, t, y, x, channel].item()
        expected = (pixel / 255 - MEAN[channel]) / STD[channel]
        assert normalised[b, channel, t, y, x].item() == pytest.approx(expected, abs=1e-5)


def test_hyperparameters_hold_the_run_config_and_class_names_but_not_the_model():
    module = tiny_module()
    assert module.hparams["run_config"] == {"model": {"cnn_blocks": 2}}
    assert module.hparams["class_names"] == list("abcde")
    assert module.hparams["aggregate"] == "mean"
    assert "model" not in module.hparams and "optim" not in module.hparams


def test_an_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="mean, majority"):
        tiny_module(aggregate="max")


def test_training_logs_the_substituted_videos_of_the_epoch():
    module = tiny_module()
    batches = [
        {"clip": uint8_clips(2, seed=s), "label": torch.tensor([0, 1]), "substituted": sub}
        for s, sub in enumerate([torch.tensor([1, 0]), torch.tensor([0, 2])])
    ]
    trainer = quiet_trainer(max_epochs=1, log_every_n_steps=1)
    trainer.fit(module, train_dataloaders=as_loader(batches))
    assert trainer.callback_metrics["data/substituted_videos"].item() == 3


def test_evaluation_skips_empty_batches_and_counts_every_view_once():
    module = tiny_module()
    labels = torch.tensor([0, 3])
    batches = [
        {
            "clip": uint8_clips(2, seed=0),
            "label": labels,
            "video_index": torch.tensor([0, 1]),
            "view_index": torch.tensor([0, 0]),
            "dropped": 1,
        },
        {  # every view of this batch failed to decode
            "clip": torch.zeros((0, 4, 32, 32, 3), dtype=torch.uint8),
            "label": torch.zeros(0, dtype=torch.long),
            "video_index": torch.zeros(0, dtype=torch.long),
            "view_index": torch.zeros(0, dtype=torch.long),
            "dropped": 2,
        },
        {
            "clip": uint8_clips(2, seed=1),
            "label": labels,
            "video_index": torch.tensor([0, 1]),
            "view_index": torch.tensor([1, 1]),
            "dropped": 0,
        },
    ]
    trainer = quiet_trainer()
    trainer.test(module, dataloaders=as_loader(batches), verbose=False)
    result = module.last_result["test"]
    assert (result.num_videos, result.num_clips) == (2, 4)
    assert result.video_labels.tolist() == [0, 3]
    assert trainer.callback_metrics["data/dropped_views"].item() == 3
    clips = {"clip": torch.cat([uint8_clips(2, seed=0), uint8_clips(2, seed=1)])}
    with torch.no_grad():
        logits = module.eval()(module.on_after_batch_transfer(clips, 0)["clip"])
    expected = logits.softmax(-1).view(2, 2, 5).mean(0)  # (view, video, K) -> per video
    torch.testing.assert_close(result.video_scores, expected, rtol=1e-4, atol=1e-5)
