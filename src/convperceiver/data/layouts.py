"""Where each dataset kind keeps its videos and splits: the one place these layouts live.

- synthetic: HMDB51 files, videos in `<root>/videos`, split files in `<root>/splits`.
- hmdb51: `<root>/<class>/*.avi`; split files in `annotations`, by default the official
  archive's `testTrainMulti_7030_splits` beside `root`.
- ucf101: `<root>/<Class>/*.avi`; `classInd.txt`, `trainlist0s.txt`, `testlist0s.txt` in
  `annotations`, by default `ucfTrainTestlist` beside `root`.
- folder: `<root>/{train,val,test}/<class>/*` where present, else `<root>/<class>/*`.
- list: `{train,val,test}.txt` of `<path> <label>` lines in `annotations` (default `root`),
  or the one list file `annotations` names; paths are relative to `root`.
A layout without a test part ("all") gets one held out by the datamodule.
"""

from __future__ import annotations

from pathlib import Path

from convperceiver.data.datasets import (
    VideoRecord,
    folder_records,
    hmdb51_records,
    list_records,
    ucf101_records,
)
from convperceiver.errors import DatasetError

# Where the official archives unpack beside the videos, the default for `annotations`.
OFFICIAL_ANNOTATIONS = {"hmdb51": "testTrainMulti_7030_splits", "ucf101": "ucfTrainTestlist"}
SUBSETS = ("train", "val", "test")  # the parts a folder or list dataset may have


def video_root(kind: str, root: str | Path) -> Path:
    """The folder every video path of a dataset is relative to."""
    return Path(root) / "videos" if kind == "synthetic" else Path(root)


def _official_annotations(kind: str, root: Path, annotations: str | Path | None) -> Path:
    if annotations:
        return Path(annotations)
    return root.parent / OFFICIAL_ANNOTATIONS[kind]


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
    the one list file `annotations` names.
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
        raise ValueError(f"dataset kind {kind!r} is not one of: hmdb51, ucf101, folder, list")
    (first, (_, class_names)), *others = loaded.items()
    for name, (_, names) in others:
        if names != class_names:
            raise DatasetError(f"{kind} dataset: the {name} part has other classes than {first}")
    return {name: records for name, (records, _) in loaded.items()}, class_names
