"""Speed of a config's model beside the plain R(2+1)D-18 at the same clip size, run two ways.

stock: fp32, channels-first, eager, as torchvision and MMAction2 run it.
ours:  the fastest settings that keep the numerics: the CNN in channels_last_3d; fp32 for
       training; bf16 autocast for inference where the device has native bf16 (its top-1
       agreement with stock fp32 is reported); torch.compile on request.

Per model: forward GFLOPs per clip (`summarize`'s), inference and training clips/s, latency
per clip at batch 1, peak memory, achieved GFLOP/s (also as a fraction of the machine's dense
matmul rate, measured in the same run). A training step is forward, loss, backward and the
config's optimizer; its FLOPs are counted on the meta device. Stock and ours runs alternate
within each repeat (`workloads`), so load from other processes falls on both alike; medians
are quoted.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from convperceiver.config import Config, ModelConfig
from convperceiver.errors import ConfigError
from convperceiver.models import build_model
from convperceiver.profiling.execution import STOCK, ours_settings
from convperceiver.profiling.flops import training_flops
from convperceiver.profiling.measure import (
    cpu_threads,
    device_name,
    keep_freed_heap,
    load_average,
    matmul_gflops,
    peak_method,
    resolve_device,
)
from convperceiver.profiling.summary import summarize
from convperceiver.profiling.workloads import (
    Workload,
    check_run_counts,
    inference_runs,
    synthetic_workload,
    training_runs,
)


def _measure(
    config: Config, work: Workload, *, num_classes: int, matmul: dict[torch.dtype, float]
) -> dict[str, Any]:
    """Every figure of one model (the config's or the baseline) under `work`."""
    summary = summarize(config, num_classes=num_classes)
    weights = "none" if config.model.weights == "kinetics400" else config.model.weights
    torch.manual_seed(0)
    template = build_model(
        dataclasses.replace(config.model, weights=weights), num_classes=num_classes
    )
    batch_size = work.batches[0].shape[0]
    infer = inference_runs(template, work)
    train = training_runs(template, work)
    train_gflops = training_flops(template, (1, *work.batches[0].shape[1:])) / 1e9
    train_rate = batch_size / train["step"]["ours"]
    infer_rate = batch_size / infer["batch"]["ours"]
    peaks = [p for p in (train["peak"], infer["peak"]) if p is not None]
    result: dict[str, Any] = {
        "arch": config.model.arch,
        "gflops": summary["gflops"],
        "train_gflops": train_gflops,
        "params": summary["total_params"],
        "tokens": summary["tokens"],
        "train_clips_per_s": train_rate,
        "infer_clips_per_s": infer_rate,
        "latency_ms": 1000 * infer["latency"]["ours"],
        "peak_memory_mb": max(peaks) if peaks else None,
        "peak_memory_train_mb": train["peak"],
        "peak_memory_infer_mb": infer["peak"],
        "achieved_gflops_train": train_gflops * train_rate,
        "achieved_gflops_infer": summary["gflops"] * infer_rate,
        "top1_agreement": infer["agreement"],
        "top1_classes": infer["classes"],  # distinct stock top-1 classes over those clips
        "stock": None,
    }
    for phase, settings in (("train", work.train), ("infer", work.infer)):
        peak = matmul[settings.amp or torch.float32]  # bf16 runs against the bf16 matmul rate
        result[f"matmul_fraction_{phase}"] = result[f"achieved_gflops_{phase}"] / peak
    if work.stock:
        result["stock"] = {
            "train_clips_per_s": batch_size / train["step"]["stock"],
            "infer_clips_per_s": batch_size / infer["batch"]["stock"],
            "latency_ms": 1000 * infer["latency"]["stock"],
        }
    return result


def _speedup(result: dict[str, Any]) -> dict[str, float]:
    stock = result["stock"]
    return {
        "train": result["train_clips_per_s"] / stock["train_clips_per_s"],
        "infer": result["infer_clips_per_s"] / stock["infer_clips_per_s"],
        "latency": stock["latency_ms"] / result["latency_ms"],
    }


def run_benchmark(
    config: Config,
    *,
    batch_size: int | None = None,
    repeats: int = 5,
    warmup: int = 2,
    device: str = "auto",
    compile: bool = False,
    baseline: bool = True,
    stock: bool = True,
    amp: str = "auto",
    train_amp: bool = False,
    channels_last: bool = True,
    threads: int | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Measure the config's model (and the baseline R(2+1)D-18) as `convperceiver benchmark` does.

    batch_size defaults to 8 on CPU and 32 on CUDA; warm-up runs (at least one: the first
    run of "ours" is the one whose peak memory is measured) come before `repeats` timed runs.
    `stock=False` skips the stock runs (no speedups, no agreement) and halves the time.
    `threads` sets torch's CPU threads for the run (default: torch's, one per core).
    """
    target = resolve_device(device)
    batch_size = batch_size or (32 if target.type == "cuda" else 8)
    check_run_counts(batch_size=batch_size, repeats=repeats, warmup=warmup, threads=threads)
    if num_classes is None:
        from convperceiver.data.datamodule import dataset_num_classes

        num_classes = dataset_num_classes(config.data)
    if num_classes == 0:
        raise ConfigError(
            f"data.dataset={config.data.dataset} has no labels: a classifier's speed needs a"
            " class count; `benchmark --pretrain` times pretraining on it"
        )
    train, infer = ours_settings(
        target, amp=amp, train_amp=train_amp, channels_last=channels_last, compile=compile
    )
    work = synthetic_workload(
        config,
        device=target,
        batch_size=batch_size,
        num_classes=num_classes,
        train=train,
        infer=infer,
        warmup=warmup,
        repeats=repeats,
        stock=stock,
    )
    with cpu_threads(threads):
        return _report(config, work, num_classes=num_classes, baseline=baseline)


def benchmark_checkpoint(
    checkpoint: str | Path,
    overrides: Sequence[str] = (),
    *,
    config_path: str | Path | None = None,
    agreement_clips: int | None = None,
    device: str = "auto",
    amp: str = "auto",
    train_amp: bool = False,
    channels_last: bool = True,
    threads: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`run_benchmark` on a trained checkpoint's config, plus our inference's top-1 agreement
    with stock fp32 on its test clips (`held_out_agreement`, at most `agreement_clips`).

    The checkpoint and its dataset are read once; `options` go to `run_benchmark`.
    """
    from convperceiver.engine.train import checkpoint_with_data
    from convperceiver.profiling.agreement import held_out_agreement

    model, config, class_names, datamodule = checkpoint_with_data(
        checkpoint, list(overrides), config_path
    )
    settings = dict(amp=amp, train_amp=train_amp, channels_last=channels_last)
    result = run_benchmark(
        config, device=device, threads=threads, num_classes=len(class_names), **settings, **options
    )
    target = resolve_device(device)
    _, infer = ours_settings(target, **settings, compile=False)
    with cpu_threads(threads):
        agreement = held_out_agreement(
            model, datamodule, settings=infer, device=target, max_clips=agreement_clips
        )
    result["held_out_agreement"] = {"checkpoint": str(checkpoint), **agreement}
    return result


def _report(config: Config, work: Workload, *, num_classes: int, baseline: bool) -> dict[str, Any]:
    """Every figure of `run_benchmark`: the matmul rate, then the model, then the baseline."""
    target, train, infer = work.device, work.train, work.infer
    batch_size, warmup, repeats = work.batches[0].shape[0], work.warmup, work.repeats
    load_before = load_average()
    allocator = "glibc, freed heap kept for reuse" if keep_freed_heap() else "default"
    matmul = {torch.float32: matmul_gflops(target)}
    if torch.bfloat16 in (train.amp, infer.amp):
        matmul[torch.bfloat16] = matmul_gflops(target, dtype=torch.bfloat16)
    measure = functools.partial(_measure, work=work, num_classes=num_classes, matmul=matmul)
    model = measure(config)
    with_baseline = baseline and config.model.arch != "baseline"
    baseline_model = ModelConfig(**{**dataclasses.asdict(config.model), "arch": "baseline"})
    base = measure(dataclasses.replace(config, model=baseline_model)) if with_baseline else None
    data = config.data
    settings = {
        "device_name": device_name(target),
        "cpu_cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "clip": [3, data.num_frames, data.crop_size, data.crop_size],
        "batch_size": batch_size,
        "warmup": warmup,
        "repeats": repeats,
        "compile": train.compile,
        "stock": STOCK.describe(),
        "ours_train": train.describe(),
        "ours_infer": infer.describe(),
        "weights": "random init (speed does not depend on the weights' values)"
        if config.model.weights in ("kinetics400", "none")
        else config.model.weights,
        "peak_memory": peak_method(target),
        "allocator": allocator,
        "load_average": {"before": load_before, "after": load_average()},
    }
    models = {"model": model, "baseline": base} if base else {"model": model}
    agreement = None
    if work.stock and infer.amp is not None:
        agreement = {name: result["top1_agreement"] for name, result in models.items()}
        agreement["clips"] = batch_size * (warmup + repeats)
    return {
        "device": target.type,
        "settings": settings,
        "matmul_gflops": matmul[torch.float32],
        "matmul_gflops_bf16": matmul.get(torch.bfloat16),
        "model": model,
        "baseline": base,
        "ratios": {
            key: model[key] / base[key] for key in ("train_clips_per_s", "infer_clips_per_s")
        }
        if base
        else None,
        "speedup_vs_stock": {name: _speedup(r) for name, r in models.items()}
        if work.stock
        else None,
        "bf16_top1_agreement": agreement,
    }


def _describe(settings: dict[str, Any]) -> str:
    compiled = ", compiled" if settings["compile"] else ""
    return f"{settings['dtype']}, {settings['memory_format']}{compiled}"


def format_benchmark(result: dict[str, Any]) -> str:
    """The run's conditions, then one row per figure: model, baseline and their ratio."""
    s = result["settings"]
    load = s["load_average"]
    lines = [
        f"device: {result['device']} ({s['device_name']}), {s['threads']} threads, "
        f"{s['cpu_cores']} cores, torch {s['torch']}",
        f"clip {'x'.join(map(str, s['clip']))}, batch {s['batch_size']}, {s['warmup']} warm-up "
        f"+ {s['repeats']} timed runs (median); load average {load['before']} -> {load['after']}",
        f"stock: {_describe(s['stock'])}",
        f"ours:  training {_describe(s['ours_train'])}; inference {_describe(s['ours_infer'])}",
        f"dense 2048x2048 matmul: {result['matmul_gflops']:.0f} GFLOP/s fp32"
        + (f", {result['matmul_gflops_bf16']:.0f} bf16" if result["matmul_gflops_bf16"] else ""),
        f"peak memory: {s['peak_memory']}; allocator: {s['allocator']}",
        f"weights: {s['weights']}; clips: synthetic moving shapes",
    ]
    busy = load["before"] and load["before"][0] >= (s["cpu_cores"] or 1)
    if result["device"] == "cpu" and busy and s["threads"] > 1:
        lines.append(
            "note: other processes already kept every core busy; with several threads each op "
            "waits for the slowest one to be scheduled, so --threads 1 gives steadier figures"
        )
    lines.append("")
    models = [r for r in (result["model"], result["baseline"]) if r is not None]
    speedups = result["speedup_vs_stock"] or {}

    def rate(name: str, key: str, phase: str) -> str:
        value = result[name][key]
        speedup = speedups.get(name, {}).get(phase)
        return f"{value:.2f}" + (f" (x{speedup:.2f} vs stock)" if speedup else "")

    def achieved(name: str, phase: str) -> str:
        r = result[name]
        return (
            f"{r[f'achieved_gflops_{phase}']:.1f} ({r[f'matmul_fraction_{phase}']:.0%} of matmul)"
        )

    def megabytes(name: str) -> str:
        r = result[name]
        values = (r["peak_memory_train_mb"], r["peak_memory_infer_mb"])
        return " / ".join("n/a" if v is None else f"{v:.0f}" for v in values)

    def agreement(name: str) -> str:
        value, classes = result[name]["top1_agreement"], result[name]["top1_classes"]
        return "n/a" if value is None else f"{value:.3f} ({classes} classes)"

    ratios = result["ratios"] or {}
    rows = [
        ("forward GFLOPs / clip", lambda n: f"{result[n]['gflops']:.2f}", ""),
        ("params", lambda n: f"{result[n]['params'] / 1e6:.2f}M", ""),
        ("train clips/s", lambda n: rate(n, "train_clips_per_s", "train"), "train_clips_per_s"),
        ("inference clips/s", lambda n: rate(n, "infer_clips_per_s", "infer"), "infer_clips_per_s"),
        ("latency ms (batch 1)", lambda n: rate(n, "latency_ms", "latency"), ""),
        ("peak MB train / infer", megabytes, ""),
        ("achieved GFLOP/s train", lambda n: achieved(n, "train"), ""),
        ("achieved GFLOP/s infer", lambda n: achieved(n, "infer"), ""),
        ("top-1 agreement vs stock", agreement, ""),
    ]
    names = ["model", "baseline"][: len(models)]
    table = [["", *names, "model/baseline" if len(models) > 1 else ""]]
    for title, cell, ratio in rows:
        table.append(
            [title, *(cell(n) for n in names), f"{ratios[ratio]:.2f}" if ratio in ratios else ""]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    held_out = result.get("held_out_agreement")
    if held_out:
        lines.append(
            f"held-out top-1 agreement, {_describe(held_out['settings'])} vs stock fp32:"
            f" {held_out['top1_agreement']:.4f} on {held_out['clips']} test clips of"
            f" {held_out['checkpoint']} (clip top-1 {held_out['ours_clip_top1']:.4f} vs"
            f" {held_out['stock_clip_top1']:.4f})"
        )
    return "\n".join(lines)
