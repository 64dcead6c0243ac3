"""The timed runs of a benchmark: what one call does, and how several runs take turns.

A run is a callable of the batch index i: an inference batch or an optimizer step (forward,
loss, backward, step) on batch i. Runs of different models or settings alternate within
every repeat, so load from other processes falls on all of them alike; medians are quoted.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convperceiver.config import Config, OptimConfig
from convperceiver.errors import ConfigError
from convperceiver.profiling.execution import STOCK, Settings, synthetic_batches
from convperceiver.profiling.measure import PeakMemory, seconds

Run = Callable[[int], object]


@dataclass
class Workload:
    """What every measured model runs: the same clips, labels, settings and repeat counts."""

    device: torch.device
    batches: list[Tensor]  # (B, 3, T, H, W) float, one per warm-up and timed run
    labels: list[Tensor]  # (B,) int64
    optim: OptimConfig
    train: Settings
    infer: Settings
    warmup: int
    repeats: int
    stock: bool


def synthetic_workload(
    config: Config,
    *,
    device: torch.device,
    batch_size: int,
    num_classes: int,
    train: Settings,
    infer: Settings,
    warmup: int,
    repeats: int,
    stock: bool,
) -> Workload:
    """Rendered clips and seeded labels for every warm-up and timed run, on `device`."""
    batches = synthetic_batches(config, batch_size=batch_size, count=warmup + repeats)
    generator = torch.Generator().manual_seed(0)
    labels = [torch.randint(num_classes, (batch_size,), generator=generator) for _ in batches]
    return Workload(
        device=device,
        batches=[b.to(device) for b in batches],
        labels=[y.to(device) for y in labels],
        optim=config.optim,
        train=train,
        infer=infer,
        warmup=warmup,
        repeats=repeats,
        stock=stock,
    )


def check_run_counts(
    *, batch_size: int, repeats: int, warmup: int, threads: int | None = None
) -> None:
    """A `ConfigError` naming the first count a benchmark cannot run with."""
    for name, value in (("batch size", batch_size), ("repeats", repeats)):
        if value < 1:
            raise ConfigError(f"{name} {value} must be >= 1")
    if warmup < 1:
        raise ConfigError(f"warmup {warmup} must be >= 1: the first run measures peak memory")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads {threads} must be >= 1")


def alternate(
    runs: dict[str, Run], *, device: torch.device, warmup: int, repeats: int, done: int
) -> dict[str, float]:
    """Median seconds per call of each run, the runs taking turns within every repeat.

    Call i uses batch i; the first `done` warm-up calls of every run were already made.
    """
    for index in range(done, warmup):
        for run in runs.values():
            run(index)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for index in range(warmup, warmup + repeats):
        for name, run in runs.items():
            times[name].append(seconds(functools.partial(run, index), device))
    return {name: statistics.median(values) for name, values in times.items()}


def optimizer_step(
    model: nn.Module,
    *,
    device: torch.device,
    settings: Settings,
    optim: OptimConfig,
    loss: Callable[[Callable[..., Any], int], Tensor],
) -> Callable[[int], None]:
    """A run of one optimizer step of `model`: `loss(forward, i)` on batch i under the
    settings' autocast, its backward, then the config's optimizer (fused as the settings say)."""
    from convperceiver.engine.optim import build_optimizer

    optimizer = build_optimizer(model, optim, fused=settings.fused_optimizer)
    forward = settings.runnable(model)

    def step(index: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with settings.autocast(device):
            value = loss(forward, index)
        value.backward()
        optimizer.step()

    return step


def inference_runs(template: nn.Module, work: Workload) -> dict[str, Any]:
    """Inference seconds per batch and per single clip, peak memory and top-1 agreement."""
    logits: dict[str, dict[int, Tensor]] = {"ours": {}, "stock": {}}

    def runner(name: str, model: nn.Module, settings: Settings, *, clips: int | None = None):
        forward = settings.runnable(model)

        def run(index: int) -> None:
            with torch.inference_mode(), settings.autocast(work.device):
                out = forward(settings.input(work.batches[index][:clips]))
            if clips is None:
                logits[name][index] = out

        return run

    timing = dict(device=work.device, warmup=work.warmup, repeats=work.repeats)
    with PeakMemory(work.device) as peak:
        ours = work.infer.prepare(template, work.device, train=False)
        runs = {"ours": runner("ours", ours, work.infer)}
        runs["ours"](0)
    models = {"ours": (ours, work.infer)}
    if work.stock:
        models["stock"] = (STOCK.prepare(template, work.device, train=False), STOCK)
        runs["stock"] = runner("stock", *models["stock"])
        runs["stock"](0)
    batch = alternate(runs, **timing, done=1)
    single = {name: runner(name, *models[name], clips=1) for name in models}
    latency = alternate(single, **timing, done=0)
    agreement = classes = None
    if work.stock:
        ours_top1, stock_top1 = (
            torch.cat([logits[name][i].float().argmax(-1).cpu() for i in sorted(logits[name])])
            for name in ("ours", "stock")
        )
        agreement = (ours_top1 == stock_top1).float().mean().item()
        # With random weights the top-1 can be one class for every clip: say how many there were.
        classes = stock_top1.unique().numel()
    return {
        "batch": batch,
        "latency": latency,
        "peak": peak.megabytes,
        "agreement": agreement,
        "classes": classes,
    }


def classification_step(template: nn.Module, settings: Settings, work: Workload) -> Run:
    """A run of one training step of a copy of the classifier `template`: cross-entropy."""
    model = settings.prepare(template, work.device, train=True)

    def loss(forward: Callable[[Tensor], Tensor], index: int) -> Tensor:
        logits = forward(settings.input(work.batches[index]))
        return F.cross_entropy(
            logits, work.labels[index], label_smoothing=work.optim.label_smoothing
        )

    return optimizer_step(model, device=work.device, settings=settings, optim=work.optim, loss=loss)


def training_runs(template: nn.Module, work: Workload) -> dict[str, Any]:
    """Seconds per optimizer step (forward, loss, backward, step) and the step's peak memory."""
    with PeakMemory(work.device) as peak:
        runs = {"ours": classification_step(template, work.train, work)}
        runs["ours"](0)  # gradients, optimizer state and activations are all allocated here
    if work.stock:
        runs["stock"] = classification_step(template, STOCK, work)
        runs["stock"](0)
    step = alternate(runs, device=work.device, warmup=work.warmup, repeats=work.repeats, done=1)
    return {"step": step, "peak": peak.megabytes}
