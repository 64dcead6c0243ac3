"""Training clips per second the data loader delivers per worker count, and the workers a GPU needs.

Our loader is built as training builds it (`VideoDataModule.train_dataloader`: a `list`
dataset over a generated set, `data.cache` for the cached rows), at the seed's clip: 16 frames
from a random 2 s window, resized to 128x171 while decoding, randomly cropped to 112 and
flipped, uint8, batch 8. It reads each set from its original files and through the cache
(`convperceiver data cache`, written once beside the set), and through the cache once more with
torch's hand-off (each batch stacked into fresh shared memory) in place of ours (reused slots,
`batch_slots.py`). The peer is MMAction2's decord pipeline (`decord_peer.py`) through the same
DataLoader settings (`datamodule.clip_loader`) with torch's hand-off, as MMAction2 has it,
when decord imports. Sets come from `bench_sets.py` and are written once under `--sets`.

Each rate is the median of `--repeats` interleaved rounds of `--seconds` each, timed after
every worker has delivered a batch, and is printed with its ratio to our in-process loader on
the original files of the same set, measured in the same run. Each source's scaling follows:
1 worker against in-process, and n workers against 1. From the 1-worker rate and the
scaling observed up to the most workers measured, it estimates the workers that feed a GPU
training at `--train-rate` clips/s (defaults: `k8_cross1_self1` on one H100 in RESULTS.md,
fp32 and bf16) or at the rates of a `convperceiver benchmark --json` file.

    python benchmarks/bench_loader.py [--sets DIR] [--count hmdb51-like=500 kinetics-like=100]
        [--workers 0 1 2] [--seconds 6] [--repeats 3]
        [--train-rate 200 410 | --from-benchmark FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import decord_peer
from bench_sets import DEFAULT_ROOT, SETS, ensure_set
from torch.utils.data import DataLoader

from convperceiver.config import DataConfig, EvalConfig
from convperceiver.data.cache import write_cache
from convperceiver.data.datamodule import VideoDataModule, clip_loader
from convperceiver.data.layouts import dataset_subsets
from convperceiver.data.transforms import train_transform
from convperceiver.profiling.measure import cpu_threads

H100_TRAIN_RATES = {"fp32": 200.0, "bf16": 410.0}  # k8_cross1_self1, batch 32, RESULTS.md
BASELINE = ("ours original", 0)
TORCH_HANDOFF = "cache, torch hand-off"  # ours through the cache, batches in fresh shared memory
SIZE = (128, 171)
CACHE = "cache"  # the cache's folder inside a set's folder
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def data_config(folder: Path, *, workers: int, cached: bool) -> DataConfig:
    """The seed's training clip over a generated set, as a training config would ask for it."""
    return DataConfig(
        dataset="list",
        root=str(folder),
        resize=list(SIZE),
        num_frames=16,
        clip_duration=2.0,
        crop_size=112,
        horizontal_flip=True,
        batch_size=8,
        num_workers=workers,
        cache=str(folder / CACHE) if cached else "",
    )


def ours(
    folder: Path, *, workers: int, cached: bool, slots: bool = True
) -> tuple[DataLoader, Callable[[int], None]]:
    """Training's loader and its `set_epoch`; `slots=False` hands batches over torch's way."""
    module = VideoDataModule(data_config(folder, workers=workers, cached=cached), EvalConfig())
    if slots:
        return module.train_dataloader(), module.set_epoch
    dataset = module.train_dataset()
    loader = clip_loader(
        dataset, batch_size=module.data.batch_size, num_workers=workers, shuffle=True
    )
    return loader, dataset.set_epoch


def decord_loader(folder: Path, *, workers: int) -> DataLoader:
    data = data_config(folder, workers=workers, cached=False)
    records = dataset_subsets("list", folder)[0]["train"]
    dataset = decord_peer.DecordClipDataset(
        records,
        num_frames=data.num_frames,
        clip_duration=data.clip_duration,
        size=SIZE,
        transform=train_transform(crop_size=data.crop_size, horizontal_flip=True),
    )
    return clip_loader(dataset, batch_size=data.batch_size, num_workers=workers, shuffle=True)


def cpu_seconds() -> float:
    """CPU time of this process and its children alive now (the loader's workers), Linux only.

    Unlike clips/s, CPU time per clip hardly changes when other jobs share the cores.
    """
    total = time.process_time()
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended meanwhile
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def clips_per_second(
    loader: DataLoader, set_epoch: Callable[[int], None] | None, *, workers: int, seconds: float
) -> tuple[float, float]:
    """Clips/s and CPU ms per clip over about `seconds`, after each worker's first batch.

    Epochs follow on as in training. The warm-up batches come from the iterator that is then
    timed: a fresh iterator of a persistent loader would first wait for the workers to finish
    the batches prefetched for the one it replaces, work that training never throws away.
    """
    batches = iter(loader)
    for _ in range(max(1, workers)):
        next(batches)
    epoch, clips = 0, 0
    cpu, started = cpu_seconds(), time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = next(batches, None)
        if batch is None:
            epoch += 1
            if set_epoch is not None:
                set_epoch(epoch)
            batches = iter(loader)
            continue
        clips += len(batch["clip"])
    elapsed = time.perf_counter() - started
    return clips / elapsed, 1000 * (cpu_seconds() - cpu) / clips


def measure_set(
    folder: Path, *, workers: Sequence[int], seconds: float, repeats: int, peer: bool
) -> dict[str, dict[int, tuple[float, float]]]:
    """Median (clips/s, CPU ms/clip) of each source and worker count, rounds interleaved."""
    sources = ["ours original", "ours cache", TORCH_HANDOFF] + (["decord original"] if peer else [])
    runs: dict[str, dict[int, list[tuple[float, float]]]] = {
        s: {w: [] for w in workers} for s in sources
    }
    for _ in range(repeats):
        for source in sources:
            for count in workers:
                if source == "decord original":
                    loader, set_epoch = decord_loader(folder, workers=count), None
                else:
                    loader, set_epoch = ours(
                        folder,
                        workers=count,
                        cached=source != "ours original",
                        slots=source != TORCH_HANDOFF,
                    )
                runs[source][count].append(
                    clips_per_second(loader, set_epoch, workers=count, seconds=seconds)
                )
                del loader  # shuts its workers down before the next measurement
    return {
        s: {
            w: (statistics.median(r for r, _ in m), statistics.median(c for _, c in m))
            for w, m in by.items()
        }
        for s, by in runs.items()
    }


def workers_needed(
    rates: dict[int, float], target: float, *, cpu_ms: float | None = None
) -> dict[str, Any]:
    """Workers for `target` clips/s: measured where a count reached it, else extrapolated.

    The extrapolation takes the 1-worker rate and the efficiency observed at the most workers
    measured, rate(n) / (n x rate(1)), capped at 1, and assumes a core per worker; on a busy
    machine that efficiency shows the other jobs too. `by_cpu` is what `cpu_ms` per clip (at
    the most workers) asks for when every worker has a core of its own: it hardly moves with
    the load.
    """
    by_cpu = math.ceil(target * cpu_ms / 1000) if cpu_ms else None
    reached = [w for w in sorted(rates) if w > 0 and rates[w] >= target]
    if reached:
        return {"workers": reached[0], "measured": True, "by_cpu": by_cpu}
    if 1 not in rates:
        return {"workers": None, "measured": False, "by_cpu": by_cpu}
    most = max(rates)
    efficiency = min(1.0, rates[most] / (most * rates[1])) if most > 1 else 1.0
    return {
        "workers": math.ceil(target / (rates[1] * efficiency)),
        "measured": False,
        "efficiency": round(efficiency, 2),
        "by_cpu": by_cpu,
    }


def scaling(rates: dict[int, float]) -> dict[str, float]:
    """1 worker's rate over in-process, and each larger count's over 1 worker's."""
    if 1 not in rates:
        return {}
    ratios = {"1 worker / in-process": rates[1] / rates[0]} if 0 in rates else {}
    for count in sorted(w for w in rates if w > 1):
        ratios[f"{count} workers / 1"] = rates[count] / rates[1]
    return {k: round(v, 2) for k, v in ratios.items()}


def train_rates(args: argparse.Namespace) -> dict[str, float]:
    if args.from_benchmark:
        result = json.loads(Path(args.from_benchmark).read_text())
        return {
            name: result[name]["train_clips_per_s"]
            for name in ("model", "baseline")
            if result.get(name)
        }
    if args.train_rate:
        return {f"{rate:g}": rate for rate in args.train_rate}
    return dict(H100_TRAIN_RATES)


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def prepare(name: str, count: int, root: Path, cores: int) -> tuple[Path, dict[str, Any]]:
    """The set and its cache, written if missing, with the seconds each took (0: already there)."""
    folder, generated = ensure_set(SETS[name], root, count=count, workers=cores)
    started = time.perf_counter()
    records = dataset_subsets("list", folder)[0]["train"]
    report = write_cache(
        records, root=folder, cache=folder / CACHE, size=SIZE, workers=cores, progress=False
    )
    cached = time.perf_counter() - started if report.written else 0.0
    return folder, {"videos": len(records), "generate_s": generated, "cache_s": cached}


def parse_counts(items: Sequence[str]) -> dict[str, int]:
    counts = {name: spec.count for name, spec in SETS.items()}
    for item in items:
        name, _, value = item.partition("=")
        if name not in SETS or not value.isdigit():
            raise SystemExit(f"--count {item!r}: expected NAME=N with NAME one of {list(SETS)}")
        counts[name] = int(value)
    return {name: n for name, n in counts.items() if n > 0}


def report_text(result: dict[str, Any], rates: dict[str, float]) -> str:
    lines = [
        f"cpu: {result['cpu']}, {result['cores']} cores; load average "
        f"{result['load_average']['before']} -> {result['load_average']['after']}",
        "clip: 16 frames from a random 2 s window, 128x171 -> crop 112, flip, uint8, batch 8; "
        f"median of {result['repeats']} rounds of {result['seconds']} s",
    ]
    if result["decord"] is None:
        lines.append("decord left out (not importable, or --no-decord): pip install decord")
    for name, entry in result["sets"].items():
        base = entry["clips_per_s"][BASELINE[0]][str(BASELINE[1])]
        lines += [
            "",
            f"{name}: {entry['videos']} videos; x = ratio to ours, in-process, original files "
            f"({base:.1f} clips/s)",
            "clips/s (x), then CPU ms per clip of the main process and its workers together",
            f"{'workers':>8}" + "".join(f"{s:>30}" for s in entry["clips_per_s"]),
        ]
        for count in result["workers"]:
            cells = "".join(
                f"{rate[str(count)]:13.1f} ({rate[str(count)] / base:5.2f}x) {cpu[str(count)]:6.2f}"
                for rate, cpu in zip(
                    entry["clips_per_s"].values(), entry["cpu_ms_per_clip"].values(), strict=True
                )
            )
            lines.append(f"{count:8d}{cells}")
        lines.append(
            "scaling: "
            + "; ".join(
                f"{source} " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
                for source, ratios in entry["scaling"].items()
            )
        )
        lines.append(
            "workers needed to feed "
            + ", ".join(f"{label} = {rate:.0f} clips/s" for label, rate in rates.items())
        )
        for source, needs in entry["workers_needed"].items():
            cells = []
            for label, need in needs.items():
                how = "measured" if need["measured"] else f"at {need.get('efficiency')} scaling"
                cells.append(f"{label}: {need['workers']} ({how}; {need['by_cpu']} by CPU time)")
            lines.append(f"  {source:>20}  " + ", ".join(cells))
    return "\n".join(lines)


def measure_sets(
    args: argparse.Namespace,
    workers: list[int],
    targets: dict[str, float],
    peer: bool,
    cores: int,
) -> dict[str, dict[str, Any]]:
    """Each generated set's rates, CPU per clip, ratios and workers needed."""
    sets = {}
    for name, count in parse_counts(args.count).items():
        folder, entry = prepare(name, count, args.sets, cores)
        print(
            f"{name}: {entry['videos']} videos in {folder}; generated in "
            f"{entry['generate_s']:.0f} s and cached in {entry['cache_s']:.0f} s on {cores} "
            "processes (0 s: already on disk)",
            file=sys.stderr,
        )
        measured = measure_set(
            folder, workers=workers, seconds=args.seconds, repeats=args.repeats, peer=peer
        )
        rates_by = {s: {w: rate for w, (rate, _) in by.items()} for s, by in measured.items()}
        entry["clips_per_s"] = {
            s: {str(w): round(r, 1) for w, r in by.items()} for s, by in rates_by.items()
        }
        entry["cpu_ms_per_clip"] = {
            s: {str(w): round(cpu, 2) for w, (_, cpu) in by.items()} for s, by in measured.items()
        }
        base = rates_by[BASELINE[0]][BASELINE[1]]
        entry["ratio_to_baseline"] = {
            s: {str(w): round(r / base, 2) for w, r in by.items()} for s, by in rates_by.items()
        }
        entry["scaling"] = {s: scaling(by) for s, by in rates_by.items()}
        most = max(workers)
        entry["workers_needed"] = {
            s: {
                label: workers_needed(by, rate, cpu_ms=measured[s][most][1])
                for label, rate in targets.items()
            }
            for s, by in rates_by.items()
        }
        sets[name] = entry
    return sets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = os.cpu_count() or 1
    default_workers = [0] + [n for n in (1, 2, 4, 8, 16, 32) if n <= cores]
    parser.add_argument("--sets", type=Path, default=DEFAULT_ROOT, help="where sets are kept")
    parser.add_argument("--count", nargs="+", default=[], help="NAME=N videos; 0 skips a set")
    parser.add_argument("--workers", type=int, nargs="+", default=default_workers)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    rates = parser.add_mutually_exclusive_group()
    rates.add_argument("--train-rate", type=float, nargs="+", help="GPU training clips/s")
    rates.add_argument("--from-benchmark", type=Path, help="`convperceiver benchmark --json` file")
    parser.add_argument("--no-decord", action="store_true", help="leave the peer out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    workers = sorted(set(args.workers) | {0})
    targets = train_rates(args)
    peer = decord_peer.version() is not None and not args.no_decord
    load_before = [round(x, 2) for x in os.getloadavg()]
    # The workers decode; the main process only collates, as in training.
    with cpu_threads(1):
        sets = measure_sets(args, workers, targets, peer, cores)
    result = {
        "cpu": cpu_model(),
        "cores": cores,
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "workers": workers,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "baseline": f"{BASELINE[0]}, {BASELINE[1]} workers",
        "decord": decord_peer.version() if peer else None,
        "train_rates": targets,
        "sets": sets,
    }
    print(json.dumps(result, indent=2) if args.json else report_text(result, targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
