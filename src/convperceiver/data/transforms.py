"""Clip transforms on uint8 frames, and the normalisation that runs on the model's device.

    TrainTransform(frames (T, H, W, 3) uint8, rng) -> (T, crop, crop, 3) uint8, cropped, flipped
    EvalTransform(frames (T, H, W, 3) uint8)       -> [(T, crop, crop, 3) uint8] views (1 or 3)
    normalize_clips(clips (B, T, H, W, 3) uint8)   -> (B, 3, T, H, W) float32, channels_last_3d

Frames arrive already resized by the decoder. Workers crop and flip uint8 only, so a clip
crosses the DataLoader queue at a quarter of its float32 size; the float conversion and the
normalisation happen once a batch is on the model's device. A frame smaller than the crop is
first scaled up (short side to the crop, keeping its aspect) rather than padded, so the model
never sees a border it was not trained on. The same crop and flip apply to every frame.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as F


def _at_least(clip: Tensor, crop_size: int) -> Tensor:
    """Scale (T, H, W, 3) up so both sides are >= crop_size; unchanged when they already are."""
    height, width = clip.shape[1:3]
    if min(height, width) >= crop_size:
        return clip
    scale = crop_size / min(height, width)
    size = [max(crop_size, round(height * scale)), max(crop_size, round(width * scale))]
    return F.resize(clip.permute(0, 3, 1, 2), size, antialias=True).permute(0, 2, 3, 1)


def _crop(clip: Tensor, top: int, left: int, size: int) -> Tensor:
    return clip[:, top : top + size, left : left + size]


class TrainTransform:
    """A random crop and an optional horizontal flip, drawn from the caller's `rng`."""

    def __init__(self, *, crop_size: int, horizontal_flip: bool) -> None:
        self.crop_size = crop_size
        self.horizontal_flip = horizontal_flip

    def __call__(self, clip: Tensor, rng: random.Random) -> Tensor:
        clip = _at_least(clip, self.crop_size)
        height, width = clip.shape[1:3]
        top = rng.randint(0, height - self.crop_size)
        left = rng.randint(0, width - self.crop_size)
        clip = _crop(clip, top, left, self.crop_size)
        if self.horizontal_flip and rng.random() < 0.5:
            clip = clip.flip(2)
        return clip


class EvalTransform:
    """The centre crop, or three crops along the long side (left/top, centre, right/bottom)."""

    def __init__(self, *, crop_size: int, three_crop: bool) -> None:
        self.crop_size = crop_size
        self.three_crop = three_crop

    def __call__(self, clip: Tensor) -> list[Tensor]:
        clip = _at_least(clip, self.crop_size)
        height, width = clip.shape[1:3]
        top, left = round((height - self.crop_size) / 2), round((width - self.crop_size) / 2)
        if not self.three_crop:
            return [_crop(clip, top, left, self.crop_size)]
        # As SlowFast's and MMAction2's ThreeCrop: the short side centred, the long side swept.
        if height > width:
            corners = [(0, left), (top, left), (height - self.crop_size, left)]
        else:
            corners = [(top, 0), (top, left), (top, width - self.crop_size)]
        return [_crop(clip, y, x, self.crop_size) for y, x in corners]


def normalize_clips(
    clips: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor
) -> Tensor:
    """uint8 clips (B, T, H, W, 3) -> float32 (B, 3, T, H, W), (pixel / 255 - mean) / std.

    Computed in float32 on the clips' device. The result is the channel-first view of a
    channels-last tensor, i.e. laid out channels_last_3d, the format the CNN runs fastest in:
    no copy is made to reorder it.
    """
    if clips.dtype != torch.uint8 or clips.dim() != 5 or clips.shape[-1] != 3:
        raise ValueError(f"expected uint8 clips (B, T, H, W, 3), got {clips.dtype} {clips.shape}")
    mean = torch.as_tensor(mean, dtype=torch.float32, device=clips.device)
    std = torch.as_tensor(std, dtype=torch.float32, device=clips.device)
    if mean.shape != (3,) or std.shape != (3,):
        raise ValueError(f"mean and std need 3 values each, got {mean.tolist()}, {std.tolist()}")
    pixels = clips.float().div_(255).sub_(mean).div_(std)  # (B, T, H, W, 3)
    return pixels.permute(0, 4, 1, 2, 3)


class ClipNormalizer(nn.Module):
    """`normalize_clips` with its mean and std as buffers, so they follow the module's device.

    The buffers are not persistent: a checkpoint's state_dict is the same with or without it.
    """

    def __init__(self, *, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)

    def forward(self, clips: Tensor) -> Tensor:
        return normalize_clips(clips, self.mean, self.std)


def train_transform(*, crop_size: int, horizontal_flip: bool) -> TrainTransform:
    """Called as `transform(frames_uint8, rng)`; flip only where a mirror keeps the label."""
    return TrainTransform(crop_size=crop_size, horizontal_flip=horizontal_flip)


def eval_transform(*, crop_size: int, three_crop: bool = False) -> EvalTransform:
    """Called as `transform(frames_uint8)`; returns a list of 1 view, or 3 with `three_crop`."""
    return EvalTransform(crop_size=crop_size, three_crop=three_crop)
