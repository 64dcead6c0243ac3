import copy

import pytest
import torch
from torch import nn

from convperceiver.models.backbone import TruncatedR2Plus1D
from convperceiver.models.masking import (
    MaskedBatchNorm3d,
    MaskedConv3d,
    convert_to_masked,
    masked_forward,
    tube_mask,
    upsample_mask,
)


@pytest.fixture
def clip():
    torch.manual_seed(1)
    return torch.randn(2, 3, 4, 32, 32)


def backbones(cnn_blocks: int = 2) -> tuple[TruncatedR2Plus1D, TruncatedR2Plus1D]:
    """A plain backbone and a masked copy with the same weights."""
    torch.manual_seed(0)
    plain = TruncatedR2Plus1D(cnn_blocks=cnn_blocks)
    return plain, convert_to_masked(copy.deepcopy(plain))


def noise_under(mask: torch.Tensor, clip: torch.Tensor) -> torch.Tensor:
    """`clip` with fresh noise in every masked tube and the visible pixels untouched."""
    pixels = upsample_mask(mask, tuple(clip.shape[2:]))
    return torch.where(pixels, torch.randn_like(clip) * 5, clip)


def test_tube_mask_masks_the_ratio_with_one_spatial_mask_for_every_frame():
    mask = tube_mask(3, (4, 5, 6), ratio=0.75, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 4, 5, 6) and mask.dtype == torch.bool
    assert mask.sum(dim=(2, 3)).eq(round(0.75 * 30)).all()
    assert (mask == mask[:, :1]).all()
    assert not torch.equal(mask[0], mask[1])


def test_tube_mask_is_reproducible_with_a_generator():
    first = tube_mask(2, (2, 4, 4), ratio=0.5, generator=torch.Generator().manual_seed(3))
    second = tube_mask(2, (2, 4, 4), ratio=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)


@pytest.mark.parametrize("ratio,masked", [(0.01, 1), (0.99, 15)])
def test_tube_mask_keeps_a_masked_and_a_visible_cell(ratio, masked):
    mask = tube_mask(2, (1, 4, 4), ratio=ratio)
    assert mask.sum(dim=(1, 2, 3)).eq(masked).all()


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.5, 1.5])
def test_tube_mask_rejects_a_ratio_outside_zero_one(ratio):
    with pytest.raises(ValueError, match="ratio"):
        tube_mask(2, (1, 4, 4), ratio=ratio)


def test_upsample_mask_covers_each_cell_with_its_tube():
    mask = tube_mask(2, (2, 4, 4), ratio=0.5)
    pixels = upsample_mask(mask, (8, 16, 16))
    assert pixels.shape == (2, 1, 8, 16, 16)
    t, h, w = torch.meshgrid(torch.arange(8), torch.arange(16), torch.arange(16), indexing="ij")
    assert torch.equal(pixels[:, 0], mask[:, t // 4, h // 4, w // 4])


def test_upsample_mask_rejects_a_size_that_is_not_a_multiple():
    with pytest.raises(ValueError, match="multiple"):
        upsample_mask(torch.zeros(1, 2, 4, 4, dtype=torch.bool), (8, 16, 15))


def test_converted_backbone_keeps_its_state_dict_keys_and_plain_behaviour(clip):
    plain, masked = backbones(cnn_blocks=4)
    assert list(masked.state_dict()) == list(plain.state_dict())
    assert any(isinstance(m, MaskedBatchNorm3d) for m in masked.modules())
    assert any(isinstance(m, MaskedConv3d) for m in masked.modules())
    TruncatedR2Plus1D(cnn_blocks=4).load_state_dict(masked.state_dict())
    with torch.no_grad():
        assert torch.equal(masked.eval()(clip), plain.eval()(clip))
        assert torch.equal(masked.train()(clip), plain.train()(clip))


def test_masked_forward_needs_a_converted_backbone(clip):
    plain, _ = backbones()
    with pytest.raises(ValueError, match="convert_to_masked"):
        masked_forward(plain, clip, tube_mask(2, (4, 16, 16), ratio=0.5))


@pytest.mark.parametrize("train", [True, False])
def test_masked_pixels_never_reach_visible_features(train, clip):
    plain, masked = backbones(cnn_blocks=4)
    plain.train(train)
    masked.train(train)
    mask = tube_mask(2, (2, 8, 8), ratio=0.5, generator=torch.Generator().manual_seed(0))
    noisy = noise_under(mask, clip)
    visible = ~mask[:, None].expand(-1, 128, -1, -1, -1)
    with torch.no_grad():
        features = masked_forward(masked, clip, mask)
        assert torch.equal(features[visible], masked_forward(masked, noisy, mask)[visible])
        assert not torch.allclose(plain(clip)[visible], plain(noisy)[visible], atol=1e-3)


def test_masked_cells_stay_zero_after_every_convolution_and_batchnorm(clip):
    plain, masked = backbones(cnn_blocks=4)
    mask = tube_mask(2, (2, 8, 8), ratio=0.5, generator=torch.Generator().manual_seed(0))
    pixels = upsample_mask(mask, tuple(clip.shape[2:]))

    def leaks(backbone: nn.Module, run) -> list[float]:
        outputs = []
        hooks = [
            module.register_forward_hook(lambda _m, _i, out: outputs.append(out))
            for module in backbone.modules()
            if isinstance(module, (nn.Conv3d, nn.BatchNorm3d))
        ]
        with torch.no_grad():
            run()
        for hook in hooks:
            hook.remove()
        grids = [nn.functional.interpolate(pixels.float(), size=o.shape[2:]) for o in outputs]
        return [(o * g).abs().max().item() for o, g in zip(outputs, grids, strict=True)]

    assert max(leaks(masked, lambda: masked_forward(masked, clip, mask))) == 0.0
    # Without masking after each layer, the zeroed pixels fill up with their neighbours'.
    assert max(leaks(plain, lambda: plain(clip.masked_fill(pixels, 0.0)))) > 0.1


def test_batchnorm_statistics_come_from_visible_positions_only(clip):
    _, masked = backbones()
    masked.train()
    mask = tube_mask(2, (4, 16, 16), ratio=0.5, generator=torch.Generator().manual_seed(0))
    conv, norm = masked.stem[0], masked.stem[1]
    with torch.no_grad():
        first = conv(clip.masked_fill(upsample_mask(mask, (4, 32, 32)), 0.0))  # (B, 45, 4, 16, 16)
    cells = first.permute(0, 2, 3, 4, 1)[~mask]  # (V, 45): the visible positions
    masked_forward(masked, clip, mask)
    momentum = norm.momentum
    assert torch.allclose(norm.running_mean, momentum * cells.mean(dim=0), atol=1e-6)
    expected_var = (1 - momentum) + momentum * cells.var(dim=0, unbiased=True)
    assert torch.allclose(norm.running_var, expected_var, atol=1e-5)
    everywhere = first.mean(dim=(0, 2, 3, 4))
    assert not torch.allclose(norm.running_mean, momentum * everywhere, atol=1e-3)


def test_masked_pixels_change_no_running_statistics(clip):
    _, masked = backbones()
    other = copy.deepcopy(masked)
    mask = tube_mask(2, (4, 16, 16), ratio=0.5, generator=torch.Generator().manual_seed(0))
    masked_forward(masked.train(), clip, mask)
    masked_forward(other.train(), noise_under(mask, clip), mask)
    assert masked.stem[1].num_batches_tracked.item() == 1
    for name, buffer in masked.state_dict().items():
        assert torch.equal(buffer, other.state_dict()[name]), name
