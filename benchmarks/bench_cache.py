"""Epoch data time with and without the pre-decoded cache (`convperceiver data cache`).

One epoch = one random 16-frame, 2 s training clip per video, decoded at 128x171 and
cropped as uint8, in one process (no DataLoader workers). Videos: the shared real clips (where
present) and HMDB51-like synthetic files, each copied a few times so an epoch has weight.
Both sides read the same windows; the ratio is from one run and never asserted.

    python benchmarks/bench_cache.py [--json] [--copies 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from convperceiver.data.cache import read_through_cache, write_cache
from convperceiver.data.datasets import TrainClipDataset
from convperceiver.data.records import VideoRecord
from convperceiver.data.synthetic import generate_synthetic
from convperceiver.data.transforms import train_transform

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
SIZE = (128, 171)


def real_clips(shared: Path = SHARED_VIDEOS) -> list[Path]:
    """The .mp4 and .avi files in `shared`, sorted; none if it is missing."""
    sources = sorted(shared.glob("*.*")) if shared.is_dir() else []
    return [s for s in sources if s.suffix in (".mp4", ".avi")]


def gather_videos(folder: Path, copies: int, *, shared: Path = SHARED_VIDEOS) -> list[VideoRecord]:
    """Copies of the real clips in `shared` and of a small synthetic set, under one root."""
    sources = real_clips(shared)
    synthetic = generate_synthetic(
        folder / "synthetic", classes=4, videos_per_class=3, frames=72, size=128, seed=0, workers=1
    )
    sources += sorted((synthetic / "videos").glob("*/*.avi"))[:4]
    records = []
    for copy in range(copies):
        for index, source in enumerate(sources):
            target = folder / "videos" / f"c{copy}" / f"{index}_{source.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            records.append(VideoRecord(str(target), 0, target.stem))
    return records


def training_dataset(records: list[VideoRecord]) -> TrainClipDataset:
    """Random 16-frame 2 s clips at 128x171, cropped to 112, flipped: the seed's training clips."""
    return TrainClipDataset(
        records,
        num_frames=16,
        clip_duration=2.0,
        size=SIZE,
        transform=train_transform(crop_size=112, horizontal_flip=True),
        seed=0,
    )


def epoch_seconds(records: list[VideoRecord]) -> float:
    dataset = training_dataset(records)
    started = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        records = gather_videos(folder, args.copies)
        started = time.perf_counter()
        write_cache(records, root=folder / "videos", cache=folder / "cache", size=SIZE, workers=2)
        cache_build = time.perf_counter() - started
        cached = read_through_cache(
            records, root=folder / "videos", cache=folder / "cache", size=SIZE
        )
        original = epoch_seconds(records)
        through_cache = epoch_seconds(cached)
    result = {
        "videos": len(records),
        "epoch_s_original": round(original, 3),
        "epoch_s_cached": round(through_cache, 3),
        "speedup": round(original / through_cache, 2),
        "cache_build_s": round(cache_build, 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['videos']} videos, one 16-frame clip each at 128x171, one process")
        print(f"  original files   {original:7.2f} s / epoch")
        print(
            f"  through cache    {through_cache:7.2f} s / epoch   "
            f"({result['speedup']:.2f}x; building the cache took {cache_build:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
