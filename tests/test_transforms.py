"""Transforms: uint8 crops, one crop and flip for all frames, three crops, device normalisation."""

from __future__ import annotations

import random

import pytest
import torch

from convperceiver.data.transforms import (
    ClipNormalizer,
    eval_transform,
    normalize_clips,
    train_transform,
)

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def ramp_clip(frames: int = 5, height: int = 20, width: int = 30) -> torch.Tensor:
    """uint8 (T, H, W, 3) where frame t is frame 0 plus t: every crop position is unique."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randint(0, 200, (1, height, width, 3), dtype=torch.uint8, generator=generator)
    return base + torch.arange(frames, dtype=torch.uint8).view(-1, 1, 1, 1)


def locate(clip: torch.Tensor, crop: torch.Tensor) -> tuple[int, int]:
    """Where `crop` (h, w, 3) sits in `clip` (H, W, 3)."""
    size = crop.shape[0]
    for top in range(clip.shape[0] - size + 1):
        for left in range(clip.shape[1] - crop.shape[1] + 1):
            if torch.equal(clip[top : top + size, left : left + crop.shape[1]], crop):
                return top, left
    raise AssertionError("crop not found")


def test_train_crops_uint8_frames():
    transform = train_transform(crop_size=12, horizontal_flip=True)
    out = transform(ramp_clip(frames=4), random.Random(0))
    assert out.shape == (4, 12, 12, 3) and out.dtype == torch.uint8


def test_train_crop_and_flip_are_the_same_for_every_frame():
    clip = ramp_clip()
    flipped = set()
    for seed in range(12):
        transform = train_transform(crop_size=12, horizontal_flip=True)
        out = transform(clip, random.Random(seed))
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
    transform = train_transform(crop_size=12, horizontal_flip=False)
    for seed in range(8):
        locate(clip[0], transform(clip, random.Random(seed))[0])


def test_eval_takes_the_centre_crop():
    clip = ramp_clip(frames=2, height=20, width=31)
    (out,) = eval_transform(crop_size=12)(clip)
    assert out.shape == (2, 12, 12, 3) and out.dtype == torch.uint8
    assert locate(clip[0], out[0]) == (4, 10)


@pytest.mark.parametrize(
    ("height", "width", "corners"),
    [
        (20, 30, [(4, 0), (4, 9), (4, 18)]),  # wide: left, centre, right
        (30, 20, [(0, 4), (9, 4), (18, 4)]),  # tall: top, centre, bottom
    ],
)
def test_three_crops_sweep_the_long_side(height, width, corners):
    clip = ramp_clip(frames=2, height=height, width=width)
    crops = eval_transform(crop_size=12, three_crop=True)(clip)
    assert [locate(clip[0], crop[0]) for crop in crops] == corners


def test_frames_smaller_than_the_crop_are_scaled_up():
    clip = torch.randint(0, 255, (3, 10, 16, 3), dtype=torch.uint8)
    (view,) = eval_transform(crop_size=12)(clip)
    assert view.shape == (3, 12, 12, 3)
    transform = train_transform(crop_size=12, horizontal_flip=True)
    assert transform(clip, random.Random(0)).shape == (3, 12, 12, 3)


def test_normalize_clips_matches_the_float_path_in_channels_last_3d():
    generator = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (2, 3, 5, 7, 3), dtype=torch.uint8, generator=generator)
    mean, std = torch.tensor(MEAN).view(3, 1, 1, 1), torch.tensor(STD).view(3, 1, 1, 1)
    reference = (clips.permute(0, 4, 1, 2, 3).float() / 255 - mean) / std  # the old CPU path
    out = normalize_clips(clips, MEAN, STD)
    assert out.shape == (2, 3, 3, 5, 7) and out.dtype == torch.float32
    assert torch.allclose(out, reference, atol=1e-6, rtol=0)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(ClipNormalizer(mean=MEAN, std=STD)(clips), out)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_normalize_clips_on_the_gpu_matches_the_cpu():
    clips = torch.randint(0, 256, (2, 4, 8, 8, 3), dtype=torch.uint8)
    on_gpu = normalize_clips(clips.cuda(), MEAN, STD)
    assert on_gpu.is_cuda and on_gpu.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(on_gpu.cpu(), normalize_clips(clips, MEAN, STD), atol=1e-6, rtol=0)


def test_normalize_clips_refuses_float_or_channel_first_input():
    with pytest.raises(ValueError, match="uint8"):
        normalize_clips(torch.zeros(1, 2, 4, 4, 3), MEAN, STD)
    with pytest.raises(ValueError, match="uint8"):
        normalize_clips(torch.zeros(1, 3, 2, 4, 4, dtype=torch.uint8), MEAN, STD)
