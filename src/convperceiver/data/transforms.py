"""Clip transforms: uint8 frames (T, H, W, 3) in, a normalised float32 clip (3, T, crop, crop) out.

Frames arrive already resized by the decoder; cropping and flipping happen on uint8, so only
the pixels kept are converted to float. A frame smaller than the crop is first scaled up
(short side to the crop, keeping its aspect) rather than padded, so the model never sees a
border it was not trained on. The same crop and flip apply to every frame of a clip.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torchvision.transforms.v2 import functional as F


def _at_least(clip: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Scale (T, H, W, 3) up so both sides are >= crop_size; unchanged when they already are."""
    height, width = clip.shape[1:3]
    if min(height, width) >= crop_size:
        return clip
    scale = crop_size / min(height, width)
    size = [max(crop_size, round(height * scale)), max(crop_size, round(width * scale))]
    return F.resize(clip.permute(0, 3, 1, 2), size, antialias=True).permute(0, 2, 3, 1)


class _Normalise:
    """(T, h, w, 3) uint8 -> (3, T, h, w) float32, (pixel / 255 - mean) / std in one pass."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values each, got {list(mean)} and {list(std)}")
        self.offset = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1) * 255
        self.scale = 1 / (torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1) * 255)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return (clip.permute(3, 0, 1, 2).float() - self.offset) * self.scale


class TrainTransform:
    """A random crop and an optional horizontal flip, drawn from the caller's `rng`."""

    def __init__(
        self, *, crop_size: int, mean: Sequence[float], std: Sequence[float], horizontal_flip: bool
    ) -> None:
        self.crop_size = crop_size
        self.horizontal_flip = horizontal_flip
        self.normalise = _Normalise(mean, std)

    def __call__(self, clip: torch.Tensor, rng: random.Random) -> torch.Tensor:
        clip = _at_least(clip, self.crop_size)
        height, width = clip.shape[1:3]
        top = rng.randint(0, height - self.crop_size)
        left = rng.randint(0, width - self.crop_size)
        clip = clip[:, top : top + self.crop_size, left : left + self.crop_size]
        if self.horizontal_flip and rng.random() < 0.5:
            clip = clip.flip(2)
        return self.normalise(clip)


class EvalTransform:
    """A centre crop, or three crops along the long side (left/top, centre, right/bottom)."""

    def __init__(
        self, *, crop_size: int, mean: Sequence[float], std: Sequence[float], three_crop: bool
    ) -> None:
        self.crop_size = crop_size
        self.three_crop = three_crop
        self.normalise = _Normalise(mean, std)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        clip = _at_least(clip, self.crop_size)
        height, width = clip.shape[1:3]
        top, left = round((height - self.crop_size) / 2), round((width - self.crop_size) / 2)
        if not self.three_crop:
            return self.normalise(self._crop(clip, top, left))
        # As SlowFast's and MMAction2's ThreeCrop: the short side centred, the long side swept.
        if height > width:
            corners = [(0, left), (top, left), (height - self.crop_size, left)]
        else:
            corners = [(top, 0), (top, left), (top, width - self.crop_size)]
        return [self.normalise(self._crop(clip, y, x)) for y, x in corners]

    def _crop(self, clip: torch.Tensor, top: int, left: int) -> torch.Tensor:
        return clip[:, top : top + self.crop_size, left : left + self.crop_size]


def train_transform(
    *, crop_size: int, mean: Sequence[float], std: Sequence[float], horizontal_flip: bool
) -> TrainTransform:
    """Called as `transform(clip_uint8, rng)`; flip only where a mirror keeps the label."""
    return TrainTransform(crop_size=crop_size, mean=mean, std=std, horizontal_flip=horizontal_flip)


def eval_transform(
    *, crop_size: int, mean: Sequence[float], std: Sequence[float], three_crop: bool = False
) -> EvalTransform:
    """Called as `transform(clip_uint8)`; returns one clip, or a list of 3 with `three_crop`."""
    return EvalTransform(crop_size=crop_size, mean=mean, std=std, three_crop=three_crop)


def normalize_clips(
    clips: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """A batch of uint8 clips (B, T, H, W, 3) to normalised float32 (B, 3, T, H, W).

    Runs where the clips are (on the accelerator after the batch is moved), so the loader
    ships uint8: a quarter of float32's bytes.
    """
    mean = torch.as_tensor(mean, dtype=torch.float32, device=clips.device).view(1, 3, 1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=clips.device).view(1, 3, 1, 1, 1)
    return (clips.permute(0, 4, 1, 2, 3).float() / 255 - mean) / std
