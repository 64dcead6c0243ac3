"""A pre-decoded cache: every video re-encoded once at the training size, read transparently.

Decoding a clip from a 340x256 h264 file with key frames 250 frames apart means decoding
dozens of frames and scaling each one; the cached copy is mpeg4 at exactly `data.resize`
with a key frame every 12 frames, so a clip decodes about 10x faster and needs no scaling.
Cached files mirror the dataset's tree: `<cache>/<path relative to root>.avi`, with
`cache.json` recording the frame size they were written at.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from convperceiver.data.datasets import VideoRecord
from convperceiver.data.video import decode_all_frames, probe_video, write_video
from convperceiver.errors import ConvPerceiverError, DatasetError

log = logging.getLogger(__name__)

META_FILE = "cache.json"


def cached_path(cache: Path, root: Path, path: str | Path) -> Path:
    """Where the cached copy of a video under `root` lives."""
    try:
        relative = Path(path).resolve().relative_to(root.resolve())
    except ValueError as error:
        raise DatasetError(
            f"{path} is not under the dataset root {root}: cannot cache it"
        ) from error
    return cache / relative.with_suffix(".avi")


def _write_one(source: str, target: str, size: tuple[int, int]) -> str:
    """Re-encode one video at `size`; returns "" or the reason it was skipped."""
    try:
        fps = probe_video(source).fps or 25.0
        frames, _ = decode_all_frames(source, size=size)
        if len(frames) == 0:
            return "no frames"
        partial = Path(f"{target}.partial.avi")
        partial.parent.mkdir(parents=True, exist_ok=True)
        write_video(partial, frames.numpy(), fps)
        os.replace(partial, target)  # a cache file is whole or absent
    except ConvPerceiverError as error:
        return str(error)
    return ""


@dataclass
class CacheReport:
    written: int
    present: int
    skipped: list[tuple[str, str]]  # (path, reason)


def write_cache(
    records: Sequence[VideoRecord],
    *,
    root: str | Path,
    cache: str | Path,
    size: tuple[int, int],
    workers: int = 2,
) -> CacheReport:
    """Cache every record not cached yet; an interrupted run continues where it stopped."""
    root, cache = Path(root), Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    meta = cache / META_FILE
    wanted = {"size": list(size)}
    if meta.is_file() and json.loads(meta.read_text()) != wanted:
        raise DatasetError(
            f"{cache} holds videos cached at {json.loads(meta.read_text())['size']}, not "
            f"{list(size)}: choose another folder or delete it"
        )
    meta.write_text(json.dumps(wanted) + "\n")
    todo = [(r.path, str(cached_path(cache, root, r.path))) for r in records]
    pending = [(source, target) for source, target in todo if not Path(target).is_file()]
    sources, targets = [s for s, _ in pending], [t for _, t in pending]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(_write_one, sources, targets, [size] * len(pending)))
    skipped = [(source, reason) for source, reason in zip(sources, reasons, strict=True) if reason]
    for source, reason in skipped:
        log.warning("not cached: %s (%s)", source, reason)
    return CacheReport(len(pending) - len(skipped), len(todo) - len(pending), skipped)


def read_through_cache(
    records: Sequence[VideoRecord], *, root: str | Path, cache: str | Path, size: tuple[int, int]
) -> list[VideoRecord]:
    """Records pointing at their cached copies where those exist, the originals elsewhere."""
    root, cache = Path(root), Path(cache)
    meta = cache / META_FILE
    if not meta.is_file():
        raise DatasetError(f"data.cache={cache} is not a cache: run `convperceiver data cache`")
    cached_size = json.loads(meta.read_text())["size"]
    if cached_size != list(size):
        raise DatasetError(
            f"data.cache={cache} was written at {cached_size}, but data.resize is {list(size)}"
        )
    out, hits = [], 0
    for record in records:
        target = cached_path(cache, root, record.path)
        if target.is_file():
            record, hits = replace(record, path=str(target)), hits + 1
        out.append(record)
    if hits < len(out):
        log.warning(
            "%d of %d videos are not in %s: read from the originals",
            len(out) - hits,
            len(out),
            cache,
        )
    return out
