"""Video records of the supported datasets, and a hold-out split that keeps sources whole.

hmdb51_records / ucf101_records / folder_records / list_records -> (records, class_names)
holdout_split(records, fraction=, seed=)     -> (train, val), no group on both sides
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from convperceiver.errors import DatasetError

logger = logging.getLogger(__name__)

HMDB51_SOURCE = (
    "the official files are hmdb51_org.rar and test_train_splits.rar from serre-lab's HMDB51 page "
    "(https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/)"
)
UCF101_SOURCE = (
    "the official files are UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip from the "
    "CRCV UCF101 page (https://www.crcv.ucf.edu/data/UCF101.php)"
)
HMDB51_IDS = {"train": "1", "test": "2", "unused": "0"}  # ids in the split files
VIDEO_SUFFIXES = frozenset(
    {".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv"}
)


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset: its file, its class index and its source."""

    path: str
    label: int
    group: str  # the source the video was cut from; a hold-out split keeps it on one side


def _require(path: Path, what: str, source: str) -> None:
    if not path.exists():
        raise DatasetError(f"{what} not found: expected {path}; {source}")


def _lines(path: Path, fields: Sequence[int], form: str) -> list[list[str]]:
    """The whitespace-separated fields of each non-empty line, checked against `form`."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        row = line.split()
        if not row:
            continue
        if len(row) not in fields:
            raise DatasetError(f"{path}:{number}: expected '{form}', got {line.strip()!r}")
        rows.append(row)
    return rows


def _present(records: list[VideoRecord], named_in: str, keep_missing: bool) -> list[VideoRecord]:
    """The records whose file exists; the others are named in one warning."""
    if keep_missing:
        return records
    missing = [r.path for r in records if not Path(r.path).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        logger.warning(
            "%d videos named in %s are missing on disk and left out: %s "
            "(`convperceiver data check` lists them all)",
            len(missing),
            named_in,
            shown,
        )
    return [r for r in records if Path(r.path).is_file()] if missing else records


def _hmdb51_group(stem: str, class_name: str) -> str:
    """The film: what precedes the class in `<film>_<class>_<body>_<camera>_..._<n>`."""
    cut = stem.rfind(f"_{class_name}_")
    return stem[:cut] if cut > 0 else stem


def _ucf101_group(stem: str) -> str:
    """The group `gNN` of `v_<Class>_gNN_cMM`: clips of one group share actors and scene."""
    match = re.search(r"_(g\d+)_c\d+$", stem)
    return match.group(1) if match else stem


def hmdb51_records(
    root: str | Path,
    split_dir: str | Path,
    *,
    split: int,
    subset: str,
    keep_missing: bool = False,
) -> tuple[list[VideoRecord], list[str]]:
    """HMDB51's official split `split` (1..3); `subset` "train" (id 1), "test" (2), "unused" (0)."""
    if subset not in HMDB51_IDS:
        raise ValueError(f"subset={subset!r} is not one of: {', '.join(HMDB51_IDS)}")
    root, split_dir = Path(root), Path(split_dir)
    suffix = f"_test_split{split}.txt"
    _require(root, "HMDB51 videos (<class>/<video>.avi)", HMDB51_SOURCE)
    _require(split_dir, "HMDB51 split files", HMDB51_SOURCE)
    split_files = {p.name[: -len(suffix)]: p for p in split_dir.glob(f"*{suffix}")}
    if not split_files:
        raise DatasetError(
            f"HMDB51 split files not found: expected {split_dir}/<class>{suffix}; {HMDB51_SOURCE}"
        )
    class_names = sorted(split_files)
    records = []
    for label, class_name in enumerate(class_names):
        for name, video_id in _lines(split_files[class_name], (2,), "<video>.avi <id>"):
            if video_id == HMDB51_IDS[subset]:
                group = _hmdb51_group(Path(name).stem, class_name)
                records.append(VideoRecord(str(root / class_name / name), label, group))
    return _present(records, f"{split_dir}/*{suffix}", keep_missing), class_names


def ucf101_records(
    root: str | Path,
    annotation_dir: str | Path,
    *,
    split: int,
    subset: str,
    keep_missing: bool = False,
) -> tuple[list[VideoRecord], list[str]]:
    """UCF101's official split `split` (1..3); a video's class comes from its folder."""
    if subset not in ("train", "test"):
        raise ValueError(f"subset={subset!r} is not one of: train, test")
    root, annotation_dir = Path(root), Path(annotation_dir)
    class_file = annotation_dir / "classInd.txt"
    list_file = annotation_dir / f"{subset}list0{split}.txt"
    _require(root, "UCF101 videos (<class>/<video>.avi)", UCF101_SOURCE)
    for path in (class_file, list_file):
        _require(path, "UCF101 annotation file", UCF101_SOURCE)
    indexed = {int(i): name for i, name in _lines(class_file, (2,), "<index> <class>")}
    class_names = [indexed[i] for i in sorted(indexed)]
    labels = {name.lower(): label for label, name in enumerate(class_names)}
    records = []
    for row in _lines(list_file, (1, 2), "<class>/<video>.avi [<label>]"):
        # The folder, not the file name: HandstandPushups/ holds v_HandStandPushups_*.avi.
        relative = PurePosixPath(row[0])
        label = labels.get(relative.parts[0].lower())
        if label is None:
            raise DatasetError(f"{list_file}: {row[0]} is not in a class of {class_file}")
        records.append(VideoRecord(str(root / relative), label, _ucf101_group(relative.stem)))
    return _present(records, str(list_file), keep_missing), class_names


def folder_records(root: str | Path) -> tuple[list[VideoRecord], list[str]]:
    """Every video file in `<root>/<class>/`; classes are the folder names, sorted."""
    root = Path(root)
    _require(root, "video folder (<class>/<video>)", "point data.root at a folder of class folders")
    videos = {
        folder.name: sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }
    class_names = [name for name, paths in videos.items() if paths]
    if not class_names:
        raise DatasetError(
            f"no videos found in {root}/<class>/ (suffixes {sorted(VIDEO_SUFFIXES)})"
        )
    records = [
        VideoRecord(str(path), label, path.stem)
        for label, name in enumerate(class_names)
        for path in videos[name]
    ]
    return records, class_names


def list_records(
    list_file: str | Path, root: str | Path, *, keep_missing: bool = False
) -> tuple[list[VideoRecord], list[str]]:
    """Lines `<path> <label>`: a label is a class index or a class name; paths are under root."""
    list_file, root = Path(list_file), Path(root)
    _require(list_file, "video list file", "write one '<path> <label>' line per video")
    rows = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        parts = line.strip().rsplit(maxsplit=1)
        if len(parts) == 2:
            rows.append(parts)
        elif parts:
            raise DatasetError(f"{list_file}:{number}: expected '<path> <label>', got {line!r}")
    numeric = [label.isdigit() for _, label in rows]
    if any(numeric) and not all(numeric):
        raise DatasetError(f"{list_file}: labels mix class indices and class names")
    if all(numeric):
        class_names = [
            str(i) for i in range(max((int(label) for _, label in rows), default=-1) + 1)
        ]
    else:
        class_names = sorted({label for _, label in rows})
    labels = {name: index for index, name in enumerate(class_names)}
    records = [
        VideoRecord(str(root / path), labels[label], Path(path).stem) for path, label in rows
    ]
    return _present(records, str(list_file), keep_missing), class_names


def holdout_split(
    records: Sequence[VideoRecord], *, fraction: float, seed: int
) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """(train, val) with about `fraction` of each class's videos in val, whole groups at a time.

    Groups are drawn in a seeded order; a class with two groups or more gets at least one in
    val and keeps at least one in train. A group can hold several classes (an HMDB51 film), so
    per-class fractions are approximate.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction} must be in (0, 1)")
    members: dict[str, Counter[int]] = defaultdict(Counter)  # group -> videos per class
    for record in records:
        members[record.group][record.label] += 1
    totals = Counter(record.label for record in records)
    in_train, in_val = Counter(totals), Counter()
    order = sorted(members)
    random.Random(seed).shuffle(order)
    val_groups: set[str] = set()
    for label in sorted(totals):
        for group in order:
            if in_val[label] >= fraction * totals[label]:
                break
            counts = members[group]
            # A group moves only if every class in it keeps some training videos.
            if (
                label in counts
                and group not in val_groups
                and all(in_train[c] > n for c, n in counts.items())
            ):
                val_groups.add(group)
                in_train -= counts
                in_val += counts
    train = [r for r in records if r.group not in val_groups]
    val = [r for r in records if r.group in val_groups]
    return train, val
