"""The peer loader: MMAction2's decord pipeline for the same training clips as ours.

MMAction2 and VideoMAE open each video with decord (`DecordInit`, one decoder thread), take
frame indices from a random window (`SampleFrames`), decode them with `get_batch`
(`DecordDecode`), then resize, crop and flip. Here decord resizes while decoding (its fastest
way, faster than a separate resize) and the crop and flip are ours, so only the decoding
differs. decord is optional (the `bench` extra); `version()` is None when it does not import.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from convperceiver.data.clip_sampling import random_clip_times
from convperceiver.data.records import VideoRecord


def version() -> str | None:
    """decord's version, or None when it does not import."""
    try:
        import decord
    except ImportError:
        return None
    return decord.__version__


class DecordClipDataset(Dataset):
    """A random clip of a video each time: {"clip": (T, crop, crop, 3) uint8, "label"}."""

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        num_frames: int,
        clip_duration: float,
        size: tuple[int, int],
        transform: Callable[[torch.Tensor, random.Random], torch.Tensor],
    ) -> None:
        self.records = list(records)
        self.num_frames, self.clip_duration, self.size = num_frames, clip_duration, size
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import decord

        record = self.records[index]
        rng = random.Random()
        height, width = self.size
        reader = decord.VideoReader(record.path, width=width, height=height, num_threads=1)
        fps, frames = reader.get_avg_fps(), len(reader)
        times = random_clip_times(
            frames / fps, clip_duration=self.clip_duration, num_frames=self.num_frames, rng=rng
        )
        indices = [min(frames - 1, round(t * fps)) for t in times]
        clip = torch.from_numpy(reader.get_batch(indices).asnumpy())  # (T, H, W, 3) uint8
        return {"clip": self.transform(clip, rng), "label": record.label}
