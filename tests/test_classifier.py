import pytest
import torch
from conftest import tiny_model_config

from convperceiver.models import ConvPerceiver, R2Plus1DClassifier, build_model

VARIANTS = {
    "cross1_self1": dict(cross_blocks=1, self_blocks=1),
    "cross1_self2": dict(cross_blocks=1, self_blocks=2),
    "cross2_self1": dict(cross_blocks=2, self_blocks=1),
    "cross_only": dict(cross_blocks=1, self_blocks=0),
    "self_only": dict(cross_blocks=0, self_blocks=1),
    "baseline": dict(arch="baseline"),
}


def build(variant: str, **overrides):
    torch.manual_seed(0)
    return build_model(tiny_model_config(**VARIANTS[variant], **overrides), num_classes=5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_gets_a_gradient(variant, tiny_clip):
    model = build(variant)
    model(tiny_clip).sum().backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []


def test_frozen_cross_attention_gets_no_gradient(tiny_clip):
    model = build("cross1_self1", freeze_cross_attention=True)
    model(tiny_clip).sum().backward()
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {
        name
        for name, _ in model.named_parameters()
        if name == "latents" or name.startswith("cross_blocks.")
    }
    assert all(p.grad is None for name, p in model.named_parameters() if name in frozen)
    assert all(p.grad is not None for name, p in model.named_parameters() if name not in frozen)


def test_frozen_cnn_blocks_keep_batchnorm_statistics(tiny_clip):
    model = build("cross1_self1", freeze_cnn_blocks=1)
    stem_bn = model.backbone.stem[1]
    running_mean = stem_bn.running_mean.clone()
    model.train()
    model(tiny_clip)
    assert not stem_bn.training
    assert torch.equal(stem_bn.running_mean, running_mean)
    assert not any(p.requires_grad for p in model.backbone.stem.parameters())
    assert not any(p.requires_grad for p in model.backbone.layer1[0].parameters())
    assert all(p.requires_grad for p in model.backbone.layer1[1].parameters())


@pytest.mark.parametrize("cnn_blocks", [1, 4, 5, 8])
@pytest.mark.parametrize("frames,height,width", [(4, 32, 32), (16, 40, 24), (64, 32, 32)])
def test_output_shapes_for_clip_lengths_and_sizes(cnn_blocks, frames, height, width):
    model = build("cross1_self1", cnn_blocks=cnn_blocks).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, frames, height, width))
        latents = model.forward_features(torch.randn(2, 3, frames, height, width))
    assert logits.shape == (1, 5)
    assert latents.shape == (2, 1 + 8, 32)


def test_a_model_runs_on_clips_of_other_sizes_than_training():
    model = build("cross2_self1").eval()
    with torch.no_grad():
        first = model(torch.randn(2, 3, 8, 32, 32))
        second = model(torch.randn(2, 3, 24, 48, 40))
    assert first.shape == second.shape == (2, 5)
    assert torch.isfinite(second).all()


def test_self_only_attends_over_cnn_tokens_plus_cls():
    model = build("self_only", cnn_blocks=4).eval()
    assert isinstance(model, ConvPerceiver) and model.latents is None
    with torch.no_grad():
        latents = model.forward_features(torch.randn(1, 3, 8, 32, 32))
    assert latents.shape == (1, 1 + 4 * 8 * 8, 128)


def test_cross_only_mean_pools_latents():
    model = build("cross_only").eval()
    assert model.cls_token is None
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(clip), pre_logits=True)
        expected = model.norm(model.forward_features(clip).mean(dim=1))
    torch.testing.assert_close(pooled, expected)


def test_baseline_is_the_full_network_with_a_new_head(tiny_clip):
    model = build("baseline")
    assert isinstance(model, R2Plus1DClassifier)
    assert model.backbone.cnn_blocks == 8 and model.fc.out_features == 5
    assert model(tiny_clip).shape == (2, 5)


def test_position_features_are_cached_per_grid(tiny_clip):
    model = build("cross1_self1").eval()
    with torch.no_grad():
        model(tiny_clip)
        model(tiny_clip)
        model(torch.randn(1, 3, 8, 32, 32))
    assert len(model._positions) == 2


@pytest.mark.parametrize("variant", ["cross1_self1", "self_only", "baseline"])
def test_weights_cast_once_give_what_autocast_gives(variant, tiny_clip):
    from convperceiver.models.runtime import cast_for_autocast

    model = build(variant).eval()
    cast = cast_for_autocast(build(variant).eval(), torch.bfloat16)
    assert cast.backbone.stem[0].weight.dtype == torch.bfloat16
    assert cast.backbone.stem[1].weight.dtype == torch.float32  # BatchNorm stays as it was
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(cast(tiny_clip), model(tiny_clip))
