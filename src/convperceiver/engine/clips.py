"""Single clips with a checkpoint's evaluation settings, for explaining and exporting models.

    middle_clip(video, config)   -> (3, T, crop, crop) float32 from the middle of a video file
    synthetic_clip(config)       -> (3, T, crop, crop) float32 from a rendered synthetic video
    display_frames(clip, config) -> (T, crop, crop, 3) uint8: what the model saw, for drawing

T is `eval.num_frames` (0: `data.num_frames`) unless the caller asks for another length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from convperceiver.config import Config
from convperceiver.data.clip_sampling import uniform_clip_times
from convperceiver.data.synthetic_render import SYNTHETIC_CLASSES, render_video
from convperceiver.data.transforms import eval_transform
from convperceiver.data.video import decode_clip, probe_video


def eval_num_frames(config: Config) -> int:
    return config.eval.num_frames or config.data.num_frames


def eval_clip_duration(config: Config) -> float:
    """Seconds one evaluation clip spans."""
    return config.eval.clip_duration or config.data.clip_duration


def _transform(frames: Tensor, config: Config) -> Tensor:
    data = config.data
    return eval_transform(crop_size=data.crop_size, mean=data.mean, std=data.std)(frames)


def middle_clip(
    video: str | Path, config: Config, *, num_frames: int | None = None
) -> tuple[Tensor, list[float]]:
    """The clip in the middle of `video`, as evaluation decodes and crops it.

    Returns the normalised clip (3, T, crop, crop) and its frame times in seconds. Raises
    `VideoError` for a file that cannot be read.
    """
    duration = probe_video(video).duration
    (times,) = uniform_clip_times(
        duration,
        clip_duration=eval_clip_duration(config),
        num_frames=num_frames or eval_num_frames(config),
        num_clips=1,  # one window is centred in the video
    )
    frames = decode_clip(video, times, size=tuple(config.data.resize))
    return _transform(frames, config), times


def synthetic_clip(config: Config, *, num_frames: int | None = None) -> Tensor:
    """A rendered synthetic video of T frames, resized and cropped as evaluation does it.

    Needs no file, so a parity check always has real image content to run on.
    """
    height, width = config.data.resize
    video = render_video(
        SYNTHETIC_CLASSES[0],
        seed=0,
        index=0,
        frames=num_frames or eval_num_frames(config),
        size=max(height, width),
    )
    frames = torch.from_numpy(video).permute(0, 3, 1, 2)  # (T, 3, S, S)
    frames = F.resize(frames, [height, width], antialias=True).permute(0, 2, 3, 1)
    return _transform(frames, config)


def display_frames(clip: Tensor, config: Config) -> np.ndarray:
    """The normalised clip (3, T, H, W) back to uint8 frames (T, H, W, 3).

    Undoing the normalisation, rather than cropping the decoded frames again, shows exactly
    the pixels the model was given.
    """
    mean = torch.tensor(config.data.mean).view(3, 1, 1, 1)
    std = torch.tensor(config.data.std).view(3, 1, 1, 1)
    pixels = ((clip * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).numpy()
