"""A pre-decoded cache: every video re-encoded once at the training size, read transparently.

Decoding a clip from a 340x256 h264 file with key frames 250 frames apart means decoding
dozens of frames and scaling each one; the cached copy is mpeg4 at exactly `data.resize`
with a key frame every 12 frames, so a clip decodes about 10x faster and needs no scaling.
Cached files mirror the dataset's tree: `<cache>/<path relative to root>.avi`, with
`cache.json` recording the frame size they were written at. Writing uses every core and
resumes: a file is written to `.partial.avi` and renamed when whole, and a run keeps the
cached files it finds at the right size.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from convperceiver.data.layouts import dataset_subsets, video_root
from convperceiver.data.records import VideoRecord
from convperceiver.data.synthetic import ensure_synthetic
from convperceiver.data.video import decode_all_frames, probe_video
from convperceiver.data.video_write import write_video
from convperceiver.errors import ConfigError, ConvPerceiverError, DatasetError, VideoError

if TYPE_CHECKING:
    from convperceiver.config import DataConfig

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


PRESENT = "present"  # what _write_one says of a file cached before at the right size
WRITTEN = ""


def _is_cached(target: Path, size: tuple[int, int]) -> bool:
    try:
        info = probe_video(target, warn=False)
    except VideoError:
        return False
    return (info.height, info.width) == tuple(size)


def _write_one(source: str, target: str, size: tuple[int, int]) -> str:
    """Re-encode one video at `size` unless it is cached already: PRESENT, WRITTEN or why not."""
    if Path(target).is_file() and _is_cached(Path(target), size):
        return PRESENT
    try:
        fps = probe_video(source).fps or 25.0
        frames, _ = decode_all_frames(source, size=size)
        partial = Path(f"{target}.partial.avi")
        partial.parent.mkdir(parents=True, exist_ok=True)
        write_video(partial, frames.numpy(), fps)
        os.replace(partial, target)  # a cache file is whole or absent
    except ConvPerceiverError as error:
        return str(error)
    return WRITTEN


@dataclass
class CacheReport:
    cache: str
    written: int
    present: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def format_text(self) -> str:
        return (
            f"cache {self.cache}: {self.written} written, {self.present} already there, "
            f"{len(self.skipped)} skipped; train with data.cache={self.cache}"
        )


def write_cache(
    records: Sequence[VideoRecord],
    *,
    root: str | Path,
    cache: str | Path,
    size: tuple[int, int],
    workers: int | None = None,
    progress: bool = True,
) -> CacheReport:
    """Cache every record not cached yet, in `workers` processes (default: one per core).

    An interrupted run continues where it stopped. The progress bar shows on a terminal.
    """
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
    todo = {r.path: str(cached_path(cache, root, r.path)) for r in records}
    outcomes: dict[str, str] = {}
    with (
        ProcessPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1)) as pool,
        tqdm(
            total=len(todo), unit="video", desc="cache", disable=None if progress else True
        ) as bar,
    ):
        futures = {
            pool.submit(_write_one, source, target, tuple(size)): source
            for source, target in todo.items()
        }
        for future in as_completed(futures):
            outcomes[futures[future]] = future.result()
            bar.update()
    skipped = [(s, reason) for s, reason in outcomes.items() if reason not in (PRESENT, WRITTEN)]
    for source, reason in sorted(skipped):
        log.warning("not cached: %s (%s)", source, reason)
    present = sum(reason == PRESENT for reason in outcomes.values())
    return CacheReport(str(cache), len(todo) - present - len(skipped), present, sorted(skipped))


def cache_dataset(
    data: DataConfig, *, out: str | None = None, workers: int | None = None
) -> CacheReport:
    """`convperceiver data cache`: cache every video of a config's dataset at `data.resize`.

    `out` defaults to `data.cache`; the synthetic set is generated first if it is not there.
    """
    cache = out or data.cache
    if not cache:
        raise ConfigError("data cache: give --out DIR or set data.cache")
    ensure_synthetic(data)
    subsets, _ = dataset_subsets(data.dataset, data.root, data.annotations, data.split)
    records = list({r.path: r for records in subsets.values() for r in records}.values())
    return write_cache(
        records,
        root=video_root(data.dataset, data.root),
        cache=cache,
        size=(data.resize[0], data.resize[1]),
        workers=workers,
    )


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
