"""Training clips per second the data loader delivers, against its number of worker processes.

The loader is the one training uses (`TrainClipDataset` in a DataLoader: random 16-frame, 2 s
clips at 128x171, cropped to 112 and flipped as uint8; pinned memory when CUDA is there), over the
videos of `bench_cache.gather_videos` (the shared real clips and HMDB51-sized synthetic files),
read from the original files and through the pre-decoded cache. Every rate is also given as a
ratio to one worker on the original files, measured in the same run. Compare the rates with the
training clips/s of `convperceiver benchmark` to see how many workers keep a GPU fed.

    python benchmarks/bench_loader.py [--workers 1 2 4 8] [--copies 4] [--epochs 2]
        [--videos DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from bench_cache import SHARED_VIDEOS, SIZE, gather_videos, training_dataset
from torch.utils.data import DataLoader

from convperceiver.data.cache import read_through_cache, write_cache
from convperceiver.data.datamodule import PREFETCH_FACTOR
from convperceiver.data.datasets import VideoRecord
from convperceiver.profiling.measure import cpu_threads


def clips_per_second(records: list[VideoRecord], *, workers: int, epochs: int) -> float:
    """Clips/s over `epochs` passes, after one untimed batch that starts the workers."""
    dataset = training_dataset(records)
    loader = DataLoader(
        dataset,
        batch_size=8,
        shuffle=True,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
    )
    next(iter(loader))
    started = time.perf_counter()
    clips = 0
    for _ in range(epochs):
        for batch in loader:
            clips += len(batch["clip"])
    return clips / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = os.cpu_count() or 1
    default_workers = [n for n in (1, 2, 4, 8, 16) if n <= cores]
    parser.add_argument("--workers", type=int, nargs="+", default=default_workers)
    parser.add_argument("--copies", type=int, default=4, help="copies of each source video")
    parser.add_argument("--epochs", type=int, default=2, help="timed passes per measurement")
    parser.add_argument("--videos", type=Path, default=SHARED_VIDEOS, help="real clips to add")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # The workers decode; the main process only collates.
    with cpu_threads(1), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        records = gather_videos(folder, args.copies, shared=args.videos)
        write_cache(records, root=folder / "videos", cache=folder / "cache", size=SIZE, workers=2)
        cached = read_through_cache(
            records, root=folder / "videos", cache=folder / "cache", size=SIZE
        )
        rates = {
            source: {
                workers: clips_per_second(chosen, workers=workers, epochs=args.epochs)
                for workers in args.workers
            }
            for source, chosen in (("original", records), ("cache", cached))
        }
    reference = rates["original"][args.workers[0]]
    result = {
        "videos": len(records),
        "cores": cores,
        "clips_per_s": {s: {str(w): round(r, 1) for w, r in by.items()} for s, by in rates.items()},
        f"ratio_to_{args.workers[0]}_worker_original": {
            s: {str(w): round(r / reference, 2) for w, r in by.items()} for s, by in rates.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(records)} videos, 16-frame clips at 128x171 -> 112, batch 8, {cores} cores")
    print(f"{'workers':>8} {'original clips/s':>18} {'cache clips/s':>15}")
    for workers in args.workers:
        original, cache = rates["original"][workers], rates["cache"][workers]
        print(
            f"{workers:8d} {original:10.1f} ({original / reference:4.2f}x)"
            f" {cache:8.1f} ({cache / reference:4.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
