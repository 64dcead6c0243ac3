import pytest
import torch
from conftest import tiny_model_config
from einops import rearrange

from convperceiver.errors import ConfigError
from convperceiver.models import build_model
from convperceiver.models.backbone import TruncatedR2Plus1D, output_grid
from convperceiver.models.masking import upsample_mask
from convperceiver.models.pretraining import (
    build_pretraining_model,
    patchify,
    token_grid,
    tube_statistics,
)

DECODER = dict(decoder_dim=32, decoder_depth=1, decoder_heads=2)
VARIANTS = {
    "cross1_self1": dict(cross_blocks=1, self_blocks=1),
    "cross2_self1": dict(cross_blocks=2, self_blocks=1),
    "cross_only": dict(cross_blocks=1, self_blocks=0),
    "baseline": dict(arch="baseline"),
}


def build(variant: str = "cross1_self1", *, teacher=None, **overrides):
    torch.manual_seed(0)
    config = tiny_model_config(**VARIANTS[variant])
    return build_pretraining_model(
        config, teacher=teacher, **{"mask_ratio": 0.5, **DECODER, **overrides}
    )


def clip_for(variant: str) -> torch.Tensor:
    """The baseline's 8-block CNN makes one token of 8 frames: its clips need 8."""
    torch.manual_seed(1)
    return torch.randn(2, 3, 8 if variant == "baseline" else 4, 32, 32)


def fixed_mask(model, clip):
    return model.random_mask(clip, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("train", [True, False])
def test_masked_pixels_change_no_prediction(train):
    model = build(teacher=TruncatedR2Plus1D(cnn_blocks=2)).train(train)
    clip = clip_for("cross1_self1")
    mask = fixed_mask(model, clip)
    pixels = upsample_mask(mask, tuple(clip.shape[2:]))
    noisy = torch.where(pixels, torch.randn_like(clip) * 5, clip)
    with torch.no_grad():
        first, second = model(clip, mask), model(noisy, mask)
    assert torch.equal(first.predictions, second.predictions)
    # The targets do read the masked pixels: the check above could fail.
    assert not torch.allclose(first.targets, second.targets)


def ramps() -> torch.Tensor:
    """(2, 3, 4, 32, 32): each sample and channel a ramp of its own direction, plus noise."""
    axes = (torch.arange(n, dtype=torch.float32) for n in (4, 32, 32))
    _, y, x = torch.meshgrid(*axes, indexing="ij")
    directions = torch.stack([torch.stack([x, y, x + y]), torch.stack([y, -x, x - y])])
    torch.manual_seed(1)
    return directions / 16 + 0.05 * torch.randn(2, 3, 4, 32, 32)


def test_loss_falls_on_a_fixed_batch():
    model = build().train()
    clip = ramps()
    mask = fixed_mask(model, clip)
    # Predicting zeros everywhere (the targets' mean) is what learning nothing would give.
    zero_loss = model(clip, mask).targets.pow(2).mean().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = model(clip, mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert losses[-1] < 0.8 * zero_loss


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_gets_a_gradient_and_the_teacher_none(variant):
    teacher = TruncatedR2Plus1D(cnn_blocks=2)
    model = build(variant, teacher=teacher).train()
    clip = clip_for(variant)
    output = model(clip, fixed_mask(model, clip))
    output.loss.backward()
    assert output.teacher_loss is not None
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    saved = {tensor.data_ptr() for tensor in model.state_dict().values()}
    assert saved.isdisjoint(tensor.data_ptr() for tensor in teacher.state_dict().values())
    assert not any(key.startswith(("teacher.", "_teacher")) for key in model.state_dict())


def test_the_encoder_keys_are_the_classifiers_without_its_head():
    model = build()
    classifier = build_model(tiny_model_config(), num_classes=5)
    encoder = {k.removeprefix("encoder.") for k in model.state_dict() if k.startswith("encoder.")}
    assert encoder == set(classifier.state_dict()) - {"fc.weight", "fc.bias"}
    state = {k.removeprefix("encoder."): v for k, v in model.state_dict().items()}
    missing, _ = classifier.load_state_dict(state, strict=False)
    assert missing == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("variant", ["cross2_self1", "baseline"])
def test_attention_reads_only_the_visible_tokens(variant):
    model = build(variant).eval()
    clip = clip_for(variant)
    mask = fixed_mask(model, clip)
    visible = int((~mask[0]).sum())
    assert 0 < visible < mask[0].numel()
    seen = {}

    def record(name):
        def hook(_module, args):
            seen[name] = args[1].shape[1]  # the tokens (or context) attended to

        return hook

    if variant == "baseline":
        model.decoder.cross.register_forward_pre_hook(record("decoder"))
    else:
        for index, block in enumerate(model.encoder.cross_blocks):
            block.register_forward_pre_hook(record(index))
    with torch.no_grad():
        model(clip, mask)
    assert seen and set(seen.values()) == {visible}


def test_targets_are_the_masked_tubes_normalised_per_tube():
    clip = clip_for("cross1_self1")
    for normalize in (True, False):
        model = build(normalize_target=normalize)
        mask = fixed_mask(model, clip)
        targets = model(clip, mask).targets  # (B, Q, t h w 3)
        masked = rearrange(mask, "b t h w -> b (t h w)")
        tubes = patchify(clip, model.tube)[masked]  # (B Q, t h w, 3)
        if normalize:
            mean, std = tube_statistics(tubes)
            tubes = (tubes - mean) / (std + 1e-6)
            assert torch.allclose(tubes.mean(dim=1), torch.zeros(()), atol=1e-5)
        assert torch.allclose(targets.flatten(0, 1), tubes.flatten(1), atol=1e-6)


def test_reconstruction_keeps_visible_tubes_and_undoes_the_normalisation():
    model = build().eval()
    clip = clip_for("cross1_self1")
    mask = fixed_mask(model, clip)
    reconstruction = model.reconstruct(clip, mask)
    assert reconstruction.shape == clip.shape
    pixels = upsample_mask(mask, tuple(clip.shape[2:])).expand_as(clip)
    assert torch.equal(reconstruction[~pixels], clip[~pixels])
    masked = rearrange(mask, "b t h w -> b (t h w)")
    mean, std = tube_statistics(patchify(clip, model.tube)[masked])
    renormalised = (patchify(reconstruction, model.tube)[masked] - mean) / (std + 1e-6)
    predictions = model(clip, mask).predictions
    assert torch.allclose(renormalised.flatten(1), predictions.flatten(0, 1), atol=1e-4)


def test_token_grid_is_the_cnn_grid_and_rejects_partial_tubes():
    config = tiny_model_config(cnn_blocks=4)
    assert token_grid(config, 8, 32, 32) == output_grid(4, 8, 32, 32) == (4, 8, 8)
    with pytest.raises(ConfigError, match="divisible by 4"):
        token_grid(config, 8, 30, 30)
    with pytest.raises(ConfigError, match="divisible by 8"):
        token_grid(tiny_model_config(arch="baseline"), 4, 32, 32)


def test_build_rejects_self_attention_only_and_an_uneven_decoder():
    config = tiny_model_config(cross_blocks=0, self_blocks=1)
    with pytest.raises(ConfigError, match=r"model\.cross_blocks=0"):
        build_pretraining_model(config, **DECODER)
    with pytest.raises(ConfigError, match=r"pretrain\.decoder_heads=3"):
        build_pretraining_model(tiny_model_config(), decoder_dim=32, decoder_heads=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_training_step_on_cuda_under_bf16_autocast():
    teacher = TruncatedR2Plus1D(cnn_blocks=2)
    model = build(teacher=teacher).cuda().train()
    clip = clip_for("cross1_self1").cuda()
    mask = model.random_mask(clip)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output = model(clip, mask)
    output.loss.backward()
    assert torch.isfinite(output.loss) and next(teacher.parameters()).is_cuda
    assert [name for name, p in model.named_parameters() if p.grad is None] == []


def test_mask_blocks_cover_whole_blocks_of_tokens_at_the_ratio():
    model = build(mask_ratio=0.75, mask_block=2)
    clip = clip_for("cross1_self1")
    mask = fixed_mask(model, clip)  # (B, T', H', W'): the tiny CNN's 4x16x16 grid
    assert mask.shape[1:] == (4, 16, 16)
    blocks = rearrange(mask, "b t (h i) (w j) -> b t h w (i j)", i=2, j=2)
    assert (blocks.all(-1) | ~blocks.any(-1)).all()  # every 2x2 block is all masked or all not
    assert (mask[:, 0].flatten(1).float().mean(1) == 0.75).all()
    assert torch.equal(mask, mask[:, :1].expand_as(mask))  # still a tube in time
    with pytest.raises(ValueError, match="mask blocks"):
        fixed_mask(build(mask_block=3), clip)
