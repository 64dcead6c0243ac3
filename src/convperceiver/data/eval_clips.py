"""The evaluation clip: resolved once from the config, then used by every caller that needs one.

    eval_clip_spec(data, evaluation)   -> EvalClipSpec (eval.* values, or data.* where None)
    spec.windows(duration)             -> frame times (seconds) of each clip of a video
    spec.views(frames)                 -> [(T, crop, crop, 3) uint8]: 1 view, or 3 with three_crop
    decode_views(path, spec)           -> (V, T, crop, crop, 3) uint8, V = clips x views, in order
    middle_clip(path, spec)            -> (T, crop, crop, 3) uint8 centre view of the centre window
    synthetic_clip(spec)               -> (T, crop, crop, 3) uint8 from a rendered synthetic video

The evaluation dataset, `VideoPredictor`, explain, export, the demo and the benchmark's
agreement all take their clips from here, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from convperceiver.config import DataConfig, EvalConfig
from convperceiver.data.clip_sampling import uniform_clip_times
from convperceiver.data.synthetic_render import SYNTHETIC_CLASSES, render_video
from convperceiver.data.transforms import EvalTransform
from convperceiver.data.video import decode_clip, probe_video


@dataclass(frozen=True)
class EvalClipSpec:
    """How evaluation turns a video into views: windows over its length, then crops of each."""

    num_frames: int  # frames per clip
    clip_duration: float  # seconds one clip spans
    num_clips: int = 0  # uniform clips per video; 0 = as many non-overlapping clips as fit
    max_clips: int = 10  # cap on clips per video when num_clips = 0; 0 = no cap
    size: tuple[int, int] | None = (128, 171)  # (height, width) the decoder resizes to; None: as is
    crop_size: int = 112
    three_crop: bool = False  # left/centre/right crops of each clip instead of the centre one
    decoder: str = "pyav"  # pyav | torchcodec-cuda (frames decoded on the GPU)

    @property
    def views_per_clip(self) -> int:
        return 3 if self.three_crop else 1

    @property
    def view_shape(self) -> tuple[int, int, int, int]:
        """(T, crop, crop, 3): the shape of one view."""
        return (self.num_frames, self.crop_size, self.crop_size, 3)

    def windows(self, duration: float) -> list[list[float]]:
        """Frame times (seconds) of the clips that evaluate a video of `duration` seconds."""
        return uniform_clip_times(
            duration,
            clip_duration=self.clip_duration,
            num_frames=self.num_frames,
            num_clips=self.num_clips,
            max_clips=self.max_clips,
        )

    def views(self, frames: Tensor) -> list[Tensor]:
        """The views (T, crop, crop, 3) uint8 of one decoded clip (T, H, W, 3) uint8."""
        return EvalTransform(crop_size=self.crop_size, three_crop=self.three_crop)(frames)

    def decode(self, path: str | Path, times: list[float]) -> Tensor:
        """The frames (T, H, W, 3) uint8 at `times`, resized to `size`; raises `VideoError`."""
        return decode_clip(path, times, size=self.size, decoder=self.decoder)


def eval_clip_spec(data: DataConfig, evaluation: EvalConfig) -> EvalClipSpec:
    """The one place evaluation clip settings are read from a config."""
    return EvalClipSpec(
        num_frames=data.num_frames if evaluation.num_frames is None else evaluation.num_frames,
        clip_duration=(
            data.clip_duration if evaluation.clip_duration is None else evaluation.clip_duration
        ),
        num_clips=evaluation.num_clips,
        max_clips=evaluation.max_clips,
        size=tuple(data.resize),
        crop_size=data.crop_size,
        three_crop=evaluation.three_crop,
        decoder=data.decoder,
    )


def decode_views(path: str | Path, spec: EvalClipSpec) -> Tensor:
    """Every view of a video, clip by clip: (V, T, crop, crop, 3) uint8.

    View v is crop v % views_per_clip of clip v // views_per_clip, the numbering the
    evaluation dataset gives `view_index`. Raises `VideoError` for a file that cannot be read.
    """
    windows = spec.windows(probe_video(path).duration)
    return torch.stack([view for times in windows for view in spec.views(spec.decode(path, times))])


def middle_clip(path: str | Path, spec: EvalClipSpec) -> tuple[Tensor, list[float]]:
    """The centre view (T, crop, crop, 3) uint8 of the window in the middle of a video.

    Also returns the frame times in seconds. Raises `VideoError` for a file that cannot be read.
    """
    (times,) = uniform_clip_times(
        probe_video(path).duration,
        clip_duration=spec.clip_duration,
        num_frames=spec.num_frames,
        num_clips=1,  # one window is centred in the video
    )
    frames = spec.decode(path, times)
    return EvalTransform(crop_size=spec.crop_size, three_crop=False)(frames)[0], times


def synthetic_clip(spec: EvalClipSpec) -> Tensor:
    """A rendered synthetic video of T frames, resized and centre-cropped as evaluation does it.

    Needs no file, so a parity check always has real image content to run on.
    """
    height, width = spec.size or (spec.crop_size, spec.crop_size)
    video = render_video(
        SYNTHETIC_CLASSES[0], seed=0, index=0, frames=spec.num_frames, size=max(height, width)
    )
    frames = torch.from_numpy(video).permute(0, 3, 1, 2)  # (T, 3, S, S)
    frames = F.resize(frames, [height, width], antialias=True).permute(0, 2, 3, 1)
    return EvalTransform(crop_size=spec.crop_size, three_crop=False)(frames)[0]
