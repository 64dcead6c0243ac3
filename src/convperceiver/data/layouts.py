"""Where each dataset kind keeps its videos and splits: the one place these layouts live.

- synthetic: HMDB51 files, videos in `<root>/videos`, split files in `<root>/splits`.
- hmdb51: `<root>/<class>/*.avi`; split files in `annotations`, by default the official
  archive's `testTrainMulti_7030_splits` beside `root` or inside it.
- ucf101: `<root>/<Class>/*.avi`; `classInd.txt`, `trainlist0s.txt`, `testlist0s.txt` in
  `annotations`, by default `ucfTrainTestlist` beside `root` or inside it.
- folder: `<root>/{train,val,test}/<class>/*` where present, else `<root>/<class>/*`.
- list: `{train,val,test}.txt` of `<path> <label>` lines in `annotations` (default `root`),
  or the one list file `annotations` names; paths are relative to `root`.
- videos: every video file under `root`, recursively, unlabelled (label -1, no classes):
  material for self-supervised pretraining.
A layout without a test part ("all") gets one held out by the datamodule.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from convperceiver.data.records import (
    HMDB51_SOURCE,
    UCF101_SOURCE,
    VIDEO_SUFFIXES,
    VideoRecord,
    folder_records,
    hmdb51_records,
    list_records,
    ucf101_records,
)
from convperceiver.errors import DatasetError

# The folders the official annotation archives unpack to, the default for `annotations`.
OFFICIAL_ANNOTATIONS = {"hmdb51": "testTrainMulti_7030_splits", "ucf101": "ucfTrainTestlist"}
OFFICIAL_SOURCES = {"hmdb51": HMDB51_SOURCE, "ucf101": UCF101_SOURCE}
SUBSETS = ("train", "val", "test")  # the parts a folder or list dataset may have
KINDS = ("synthetic", "hmdb51", "ucf101", "folder", "list", "videos")


def video_root(kind: str, root: str | Path) -> Path:
    """The folder every video path of a dataset is relative to."""
    return Path(root) / "videos" if kind == "synthetic" else Path(root)


def _official_annotations(kind: str, root: Path, annotations: str | Path | None) -> Path:
    """`annotations`, else the official folder beside root or inside it (both archives
    extracted into one folder)."""
    if annotations:
        return Path(annotations)
    places = [root.parent / OFFICIAL_ANNOTATIONS[kind], root / OFFICIAL_ANNOTATIONS[kind]]
    found = next((place for place in places if place.is_dir()), None)
    if found is None and not root.exists():
        return places[0]  # the reader says the videos are missing, the first thing to fix
    if found is None:
        raise DatasetError(
            f"{kind} annotations not found: looked for {places[0]} and {places[1]}; "
            f"set data.annotations to their folder; {OFFICIAL_SOURCES[kind]}"
        )
    return found


def _videos_under(folder: Path) -> list[Path]:
    """Video files under `folder` at any depth, sorted; hidden files and folders are skipped."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in VIDEO_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def _no_videos(folder: Path) -> DatasetError:
    return DatasetError(
        f"no videos in {folder} or its subfolders (suffixes {', '.join(sorted(VIDEO_SUFFIXES))})"
    )


def video_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, and each folder's videos at any depth, sorted: what `predict` reads."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            videos = _videos_under(path)
            if not videos:
                raise _no_videos(path)
            found.extend(videos)
        else:
            found.append(path)
    return found


def unlabelled_records(root: str | Path) -> list[VideoRecord]:
    """Every video under `root`, recursively, with label -1; each is its own group."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"videos dataset: folder not found: {root}")
    videos = _videos_under(root)
    if not videos:
        raise _no_videos(root)
    return [
        VideoRecord(str(path), -1, path.relative_to(root).with_suffix("").as_posix())
        for path in videos
    ]


def dataset_subsets(
    kind: str,
    root: str | Path,
    annotations: str | Path | None = None,
    split: int = 1,
    *,
    keep_missing: bool = False,
) -> tuple[dict[str, list[VideoRecord]], list[str]]:
    """Every split a dataset has, and its class names; `keep_missing` keeps absent files in.

    synthetic: HMDB51 files in `<root>/videos` and `<root>/splits`;
    hmdb51 / ucf101: the official train and test lists of `split` (annotations default to the
    archives' folders beside root); folder: `<root>/{train,val,test}/<class>/` where present,
    else `<root>/<class>/`; list: `{train,val,test}.txt` in `annotations` (default root), or
    the one list file `annotations` names; videos: every video under root as "all", with no
    class names.
    """
    root = Path(root)
    if kind == "synthetic":
        kind, root, annotations = "hmdb51", video_root(kind, root), root / "splits"
    if kind in OFFICIAL_ANNOTATIONS:
        read = hmdb51_records if kind == "hmdb51" else ucf101_records
        folder = _official_annotations(kind, root, annotations)
        subsets, class_names = {}, []
        for subset in ("train", "test"):
            subsets[subset], class_names = read(
                root, folder, split=split, subset=subset, keep_missing=keep_missing
            )
        return subsets, class_names
    if kind == "videos":
        return {"all": unlabelled_records(root)}, []
    if kind == "folder":
        parts = {name: root / name for name in SUBSETS if (root / name).is_dir()} or {"all": root}
        loaded = {name: folder_records(path) for name, path in parts.items()}
    elif kind == "list":
        source = Path(annotations) if annotations else root
        parts = {"all": source} if source.is_file() else {}
        parts = parts or {
            n: source / f"{n}.txt" for n in SUBSETS if (source / f"{n}.txt").is_file()
        }
        if not parts:
            raise DatasetError(
                f"list dataset: expected {source}/train.txt ('<path> <label>' lines)"
            )
        loaded = {
            name: list_records(path, root, keep_missing=keep_missing)
            for name, path in parts.items()
        }
    else:
        raise ValueError(f"dataset kind {kind!r} is not one of: {', '.join(KINDS)}")
    (first, (_, class_names)), *others = loaded.items()
    for name, (_, names) in others:
        if names != class_names:
            raise DatasetError(f"{kind} dataset: the {name} part has other classes than {first}")
    return {name: records for name, (records, _) in loaded.items()}, class_names
