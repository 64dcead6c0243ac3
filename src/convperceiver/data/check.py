"""`convperceiver data check`: open every video a dataset would use and say what is wrong.

Per file: missing from disk, cannot open, no video stream or zero frames (broken: training
replaces it); cut off or with a header that overstates its length (a warning: usable, with the
frames it has) and shorter than a clip (a warning: usable, its frames are stretched). The
summary counts videos per split and class and describes durations, frame rates and sizes.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convperceiver.config import DataConfig
from convperceiver.data.layouts import dataset_subsets
from convperceiver.data.records import VideoRecord
from convperceiver.data.video import VideoInfo, decode_clip, overstated_problem, probe_video
from convperceiver.errors import VideoError


@dataclass
class FileCheck:
    """One video of one split, what its container says, and what is wrong with it."""

    path: str
    split: str
    label: int  # -1 in an unlabelled dataset
    info: VideoInfo | None  # None when the file is broken
    problem: str = ""
    broken: bool = False


def _format_count(counts: Counter[str], unit: str = "") -> str:
    return ", ".join(f"{key}{unit} ({n})" for key, n in counts.most_common())


@dataclass
class CheckReport:
    files: list[FileCheck]
    class_names: list[str]
    clip_duration: float

    @property
    def usable(self) -> bool:
        """False when any file is missing, unreadable or holds no frames."""
        return not any(f.broken for f in self.files)

    @property
    def problems(self) -> list[FileCheck]:
        return [f for f in self.files if f.problem]

    def summary(self) -> dict[str, Any]:
        readable = [f.info for f in self.files if f.info is not None]
        durations = [info.duration for info in readable]
        per_class: dict[str, Counter[str]] = {name: Counter() for name in self.class_names}
        for f in self.files:
            if f.label >= 0:
                per_class[self.class_names[f.label]][f.split] += 1
        return {
            "videos": len(self.files),
            "broken": sum(f.broken for f in self.files),
            "warnings": sum(bool(f.problem) and not f.broken for f in self.files),
            "per_split": dict(Counter(f.split for f in self.files)),
            "per_class": {name: dict(counts) for name, counts in per_class.items()},
            "duration_s": {
                "min": min(durations),
                "median": statistics.median(durations),
                "max": max(durations),
            }
            if durations
            else None,
            "fps": dict(Counter(f"{info.fps:.2f}".rstrip("0").rstrip(".") for info in readable)),
            "sizes": dict(Counter(f"{info.width}x{info.height}" for info in readable)),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "usable": self.usable,
            "problems": [
                {"path": f.path, "problem": f.problem, "level": "broken" if f.broken else "warning"}
                for f in self.problems
            ],
            "summary": self.summary(),
        }

    def format_text(self) -> str:
        summary = self.summary()
        splits = ", ".join(f"{name} {n}" for name, n in summary["per_split"].items())
        sizes = [sum(counts.values()) for counts in summary["per_class"].values()]
        classes = (
            f"in {len(sizes)} classes ({min(sizes)}-{max(sizes)} per class)"
            if sizes
            else "unlabelled"
        )
        lines = [f"videos: {summary['videos']} ({splits}) {classes}"]
        if summary["duration_s"]:
            d = summary["duration_s"]
            lines.append(
                f"duration: min {d['min']:.2f} s, median {d['median']:.2f} s, max {d['max']:.2f} s"
            )
            lines.append(f"frame rates: {_format_count(Counter(summary['fps']), ' fps')}")
            lines.append(f"sizes: {_format_count(Counter(summary['sizes']))}")
        lines.append(f"problems: {summary['broken']} broken, {summary['warnings']} warnings")
        for f in sorted(self.problems, key=lambda f: (not f.broken, f.path)):
            lines.append(f"  {'broken ' if f.broken else 'warning'}  {f.path}: {f.problem}")
        verdict = (
            "yes"
            if self.usable
            else "no: training replaces the broken files by others, fix or drop them"
        )
        lines.append(f"usable: {verdict}")
        return "\n".join(lines)


def check_file(
    record: VideoRecord, *, split: str, clip_duration: float, min_frames: int = 1
) -> FileCheck:
    """Probe a video, then decode its first frame and its last (a damaged file fails there)."""

    def broken(problem: str) -> FileCheck:
        return FileCheck(record.path, split, record.label, None, problem, broken=True)

    if not Path(record.path).is_file():
        return broken("missing from disk, though the annotations name it")
    try:
        info = probe_video(record.path, warn=False)
        decode_clip(record.path, [0.0], size=(8, 8))
        decode_clip(record.path, [info.duration], size=(8, 8))
    except VideoError as error:
        return broken(str(error).removeprefix(f"{record.path}: "))
    if info.num_frames < min_frames:
        return broken(f"{info.num_frames} frames, fewer than {min_frames}")
    problems = []
    if info.header_duration is not None:
        problems.append(overstated_problem(info.header_duration, info.duration))
    if info.duration < clip_duration:
        problems.append(
            f"shorter than a clip ({info.duration:.2f} s < {clip_duration:g} s): "
            "its frames will be stretched"
        )
    return FileCheck(record.path, split, record.label, info, "; ".join(problems))


def check_records(
    records: Sequence[VideoRecord],
    *,
    clip_duration: float,
    min_frames: int = 1,
    split: str = "all",
    class_names: Sequence[str] | None = None,
) -> CheckReport:
    """Check every record as part of `split`; class names default to the label numbers."""
    if class_names is None:
        class_names = [str(i) for i in range(max((r.label for r in records), default=-1) + 1)]
    files = [
        check_file(r, split=split, clip_duration=clip_duration, min_frames=min_frames)
        for r in records
    ]
    return CheckReport(files, list(class_names), clip_duration)


def check_dataset(
    kind: str,
    root: str | Path,
    annotations: str | Path | None = None,
    split: int = 1,
    clip_duration: float = 2.0,
) -> CheckReport:
    """Check every video of every split of a dataset (`layouts.dataset_subsets`)."""
    subsets, class_names = dataset_subsets(kind, root, annotations, split, keep_missing=True)
    files = [
        check_file(record, split=name, clip_duration=clip_duration)
        for name, records in subsets.items()
        for record in records
    ]
    return CheckReport(files, class_names, clip_duration)


def check_data(data: DataConfig) -> CheckReport:
    """`check_dataset` on a config's dataset, at its clip duration (`convperceiver data check`)."""
    return check_dataset(data.dataset, data.root, data.annotations, data.split, data.clip_duration)
