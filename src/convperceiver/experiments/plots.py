"""Ablation figures: accuracy against size and cost, and the overfitting gap per variant."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker

from convperceiver.experiments.tables import by_series, group_by_variant


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "results"


def _mean(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def _spread(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def plot_section(runs_by_variant: dict[str, list[dict[str, Any]]], title: str, path: Path) -> None:
    """Val accuracy vs attention params and vs GFLOPs; train vs val loss per variant."""
    names = list(runs_by_variant)
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for axis, key, label in (
        (axes[0], "attention_params", "attention params (M)"),
        (axes[1], "gflops", "forward GFLOPs per clip"),
    ):
        for name in names:
            runs = runs_by_variant[name]
            x, y = _mean(runs, key), _mean(runs, "val_acc")
            if x is None or y is None:
                continue
            x = x / 1e6 if key == "attention_params" else x
            axis.errorbar(x, y, yerr=_spread(runs, "val_acc"), fmt="o", capsize=3)
            axis.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        axis.set_xlabel(label)
        axis.set_ylabel("val video top-1")
    positions = range(len(names))
    width = 0.38
    for offset, key, label in (
        (-width / 2, "train_loss", "train loss"),
        (width / 2, "val_loss", "val loss"),
    ):
        heights = [_mean(runs_by_variant[n], key) or 0.0 for n in names]
        errors = [_spread(runs_by_variant[n], key) for n in names]
        axes[2].bar(
            [p + offset for p in positions], heights, width, yerr=errors, label=label, capsize=2
        )
    axes[2].set_xticks(list(positions), names, rotation=35, ha="right", fontsize=7)
    axes[2].set_ylabel("loss at the kept epoch")
    axes[2].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_eval_frames(runs_by_variant: dict[str, list[dict[str, Any]]], path: Path) -> bool:
    """Test accuracy against the test-time clip length; False when nothing was swept."""
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    drawn = False
    for name, runs in runs_by_variant.items():
        frames = sorted({int(f) for r in runs for f in r.get("eval_frames", {})})
        if not frames:
            continue
        means = [statistics.fmean(r["eval_frames"][str(f)] for r in runs) for f in frames]
        axis.plot(frames, means, marker="o", label=name)
        drawn = True
    if drawn:
        axis.set_xscale("log", base=2)
        axis.set_xlabel("frames per test clip (same frame rate)")
        axis.set_ylabel("test video top-1")
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    plt.close(figure)
    return drawn


def plot_label_efficiency(results: Sequence[dict[str, Any]], path: Path) -> bool:
    """Test top-1 against the label fraction, one line per series; False when none is named."""
    table = by_series(results)
    if not table:
        return False
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for series, row in table.items():
        fractions = sorted(row)
        means = [statistics.fmean(row[f]) for f in fractions]
        spreads = [statistics.stdev(row[f]) if len(row[f]) > 1 else 0.0 for f in fractions]
        axis.errorbar(fractions, means, yerr=spreads, marker="o", capsize=3, label=series)
    axis.set_xscale("log")
    axis.set_xticks(sorted({f for row in table.values() for f in row}))
    axis.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    axis.set_xlabel("training labels used")
    axis.set_ylabel("test video top-1")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def plot_suite(
    results: Sequence[dict[str, Any]], sections: dict[str, list[str]], folder: Path
) -> list[Path]:
    """One figure per section, plus the clip-length sweep; returns the files written."""
    grouped = group_by_variant(results)
    written = []
    for section, names in sections.items():
        in_section = {name: grouped[name] for name in names if name in grouped}
        path = folder / f"{_slug(section)}.png"
        plot_section(in_section, section, path)
        written.append(path)
    if plot_eval_frames(grouped, folder / "eval_frames.png"):
        written.append(folder / "eval_frames.png")
    if plot_label_efficiency(results, folder / "labels.png"):
        written.append(folder / "labels.png")
    return written
