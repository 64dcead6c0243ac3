"""Transforms: shapes and dtype, normalisation, one crop and flip for all frames, three crops."""

from __future__ import annotations

import random

import pytest
import torch

from convperceiver.data.transforms import eval_transform, train_transform

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def ramp_clip(frames: int = 5, height: int = 20, width: int = 30) -> torch.Tensor:
    """uint8 (T, H, W, 3) where frame t is frame 0 plus t: every crop position is unique."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randint(0, 200, (1, height, width, 3), dtype=torch.uint8, generator=generator)
    return base + torch.arange(frames, dtype=torch.uint8).view(-1, 1, 1, 1)


def to_uint8(clip: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: (3, T, h, w) float -> (T, h, w, 3) uint8."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1, 1), torch.tensor(STD).view(3, 1, 1, 1)
    return ((clip * std + mean) * 255).round().to(torch.uint8).permute(1, 2, 3, 0)


def locate(clip: torch.Tensor, crop: torch.Tensor) -> tuple[int, int]:
    """Where `crop` (h, w, 3) sits in `clip` (H, W, 3)."""
    size = crop.shape[0]
    for top in range(clip.shape[0] - size + 1):
        for left in range(clip.shape[1] - crop.shape[1] + 1):
            if torch.equal(clip[top : top + size, left : left + crop.shape[1]], crop):
                return top, left
    raise AssertionError("crop not found")


def test_train_output_shape_dtype_and_normalisation():
    transform = train_transform(crop_size=12, mean=MEAN, std=STD, horizontal_flip=True)
    clip = torch.full((4, 20, 30, 3), 51, dtype=torch.uint8)
    out = transform(clip, random.Random(0))
    assert out.shape == (3, 4, 12, 12) and out.dtype == torch.float32
    expected = (51 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), expected, atol=1e-6)


def test_train_crop_and_flip_are_the_same_for_every_frame():
    clip = ramp_clip()
    flipped = set()
    for seed in range(12):
        transform = train_transform(crop_size=12, mean=MEAN, std=STD, horizontal_flip=True)
        out = to_uint8(transform(clip, random.Random(seed)))
        first = out[0]
        for t in range(1, clip.shape[0]):
            assert torch.equal(out[t] - t, first)  # the same pixels of every frame
        is_flipped = False
        try:
            top, left = locate(clip[0], first)
        except AssertionError:
            top, left = locate(clip[0], first.flip(1))
            is_flipped = True
        flipped.add(is_flipped)
        assert 0 <= top <= 8 and 0 <= left <= 18
    assert flipped == {True, False}


def test_no_flip_when_it_is_off():
    clip = ramp_clip()
    transform = train_transform(crop_size=12, mean=MEAN, std=STD, horizontal_flip=False)
    for seed in range(8):
        locate(clip[0], to_uint8(transform(clip, random.Random(seed)))[0])


def test_eval_takes_the_centre_crop():
    clip = ramp_clip(frames=2, height=20, width=31)
    out = eval_transform(crop_size=12, mean=MEAN, std=STD)(clip)
    assert out.shape == (3, 2, 12, 12)
    assert locate(clip[0], to_uint8(out)[0]) == (4, 10)


@pytest.mark.parametrize(
    ("height", "width", "corners"),
    [
        (20, 30, [(4, 0), (4, 9), (4, 18)]),  # wide: left, centre, right
        (30, 20, [(0, 4), (9, 4), (18, 4)]),  # tall: top, centre, bottom
    ],
)
def test_three_crops_sweep_the_long_side(height, width, corners):
    clip = ramp_clip(frames=2, height=height, width=width)
    crops = eval_transform(crop_size=12, mean=MEAN, std=STD, three_crop=True)(clip)
    assert isinstance(crops, list) and len(crops) == 3
    assert [locate(clip[0], to_uint8(crop)[0]) for crop in crops] == corners


def test_frames_smaller_than_the_crop_are_scaled_up():
    clip = torch.randint(0, 255, (3, 10, 16, 3), dtype=torch.uint8)
    for transform in (
        eval_transform(crop_size=12, mean=MEAN, std=STD),
        lambda c: train_transform(crop_size=12, mean=MEAN, std=STD, horizontal_flip=True)(
            c, random.Random(0)
        ),
    ):
        assert transform(clip).shape == (3, 3, 12, 12)
