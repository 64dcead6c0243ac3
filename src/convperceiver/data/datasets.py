"""The clip Datasets: video records in, uint8 clips out, broken files replaced or dropped.

TrainClipDataset(records, ...)           -> {"clip": (T, crop, crop, 3) uint8, "label",
                                             "substituted"}
EvalClipDataset(records, spec=)          -> {"clip": (T, crop, crop, 3) uint8, "label",
                                             "video_index", "view_index"} or None
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from convperceiver.data.clip_sampling import random_clip_times
from convperceiver.data.eval_clips import EvalClipSpec
from convperceiver.data.records import VideoRecord
from convperceiver.data.video import decode_clip, probe_video
from convperceiver.errors import VideoError

logger = logging.getLogger(__name__)

MAX_SUBSTITUTIONS = 50  # undecodable videos in a row before a training item gives up


class TrainClipDataset(Dataset):
    """One random clip of each video per epoch: {"clip": (T, crop, crop, 3) uint8, "label",
    "substituted"}.

    Item i of epoch e comes from generators seeded by (seed, e, i) alone, so it is the same
    whatever the number of workers, the sampler's order or what a process drew before. The epoch
    is a shared-memory tensor: `set_epoch` in the main process reaches persistent workers. A
    video that cannot be decoded is replaced by other random ones, with one warning per file in
    each process; `substituted` counts the replacements behind an item.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        num_frames: int,
        clip_duration: float,
        size: tuple[int, int] | None = (128, 171),
        transform: Callable[[torch.Tensor, random.Random], torch.Tensor],
        seed: int = 0,
        class_names: Sequence[str] | None = None,
        decoder: str = "pyav",
    ) -> None:
        self.records = list(records)
        self.class_names = _class_names(self.records, class_names)
        self.num_frames, self.clip_duration, self.size = num_frames, clip_duration, size
        self.transform = transform
        self.decoder = decoder
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._durations: dict[int, float] = {}
        self._broken: dict[int, str] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Seen at once by every worker, persistent ones included."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = f"{self.seed}:{self.epoch}:{index}"
        # Each attempt has its own generator: a video known to be broken in this process but
        # not in another changes no draw.
        substitutes = random.Random(f"{key}:substitutes")
        video = index
        for substituted in range(MAX_SUBSTITUTIONS + 1):
            if video not in self._broken:
                try:
                    clip = self._random_clip(video, random.Random(f"{key}:{substituted}"))
                except VideoError as error:
                    _warn_once(self._broken, video, error, "other videos take its place")
                else:
                    label = self.records[video].label
                    return {"clip": clip, "label": label, "substituted": substituted}
            last, video = video, substitutes.randrange(len(self.records))
        raise VideoError(
            f"{MAX_SUBSTITUTIONS + 1} videos drawn in a row could not be decoded, the last "
            f"{self._broken[last]}; `convperceiver data check` lists every broken file"
        )

    def _random_clip(self, index: int, rng: random.Random) -> torch.Tensor:
        path = self.records[index].path
        if index not in self._durations:
            self._durations[index] = probe_video(path).duration
        times = random_clip_times(
            self._durations[index],
            clip_duration=self.clip_duration,
            num_frames=self.num_frames,
            rng=rng,
        )
        frames = decode_clip(path, times, size=self.size, decoder=self.decoder)
        return self.transform(frames, rng)


class EvalClipDataset(Dataset):
    """Every view of every evaluation clip of every video, in order:
    {"clip": (T, crop, crop, 3) uint8, "label", "video_index", "view_index"}.

    `view_index` = clip * views_per_clip + crop numbers a video's views, as `decode_views` orders
    them. Videos that cannot be probed are left out at init (`left_out_paths`); a view whose
    clip fails to decode later comes back as None, with one warning per file, for
    `datamodule.collate_eval` to drop.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        spec: EvalClipSpec,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.spec = spec
        self.class_names = _class_names(records, class_names)
        self.records: list[VideoRecord] = []
        self.left_out_paths: list[str] = []
        self._windows: list[list[list[float]]] = []
        for record in records:
            try:
                duration = probe_video(record.path).duration
            except VideoError as error:
                logger.warning("left out of evaluation: %s", error)
                self.left_out_paths.append(record.path)
                continue
            self.records.append(record)
            self._windows.append(spec.windows(duration))
        self._items = [
            (video, clip, crop)
            for video, windows in enumerate(self._windows)
            for clip in range(len(windows))
            for crop in range(spec.views_per_clip)
        ]
        self._broken: dict[int, str] = {}
        self._last: tuple[tuple[int, int], list[torch.Tensor] | None] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_videos(self) -> int:
        return len(self.records)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        video, clip, crop = self._items[index]
        views = self._views(video, clip)
        if views is None:
            return None
        return {
            "clip": views[crop],
            "label": self.records[video].label,
            "video_index": video,
            "view_index": clip * self.spec.views_per_clip + crop,
        }

    def _views(self, video: int, clip: int) -> list[torch.Tensor] | None:
        # The views of one clip are consecutive items: decode it once for all of them.
        if self._last is None or self._last[0] != (video, clip):
            path = self.records[video].path
            try:
                views = self.spec.views(self.spec.decode(path, self._windows[video][clip]))
            except VideoError as error:
                _warn_once(self._broken, video, error, "views that fail to decode are dropped")
                views = None
            self._last = ((video, clip), views)
        return self._last[1]


def _class_names(records: Sequence[VideoRecord], class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
        return list(class_names)
    return [str(i) for i in range(max((r.label for r in records), default=-1) + 1)]


def _warn_once(broken: dict[int, str], index: int, error: VideoError, consequence: str) -> None:
    if index not in broken:
        broken[index] = str(error)
        logger.warning("%s; %s", error, consequence)
