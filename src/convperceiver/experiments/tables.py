"""Ablation results as tables: results.csv (one row per run) and results.md (mean +- std)."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The seed's columns first, then ours.
COLUMNS = [
    ("train_loss", "Train loss", "{:.4f}"),
    ("val_loss", "Val loss", "{:.3f}"),
    ("val_acc", "Val Acc", "{:.4f}"),
    ("cnn_params", "CNN params", "params"),
    ("attention_params", "Attention params", "params"),
    ("test_top1", "Test top-1", "{:.4f}"),
    ("test_top5", "Test top-5", "{:.4f}"),
    ("gflops", "GFLOPs", "{:.2f}"),
    ("train_clips_per_s", "Train clips/s", "{:.1f}"),
    ("test_clips_per_s", "Infer clips/s", "{:.1f}"),
    ("wall_s", "Wall time", "seconds"),
]
CSV_FIELDS = [
    "variant",
    "seed",
    "init_from",
    "series",
    "label_fraction",
    "best_epoch",
    *[key for key, _, _ in COLUMNS],
]


def write_csv(results: Sequence[dict[str, Any]], path: Path) -> None:
    frames = sorted({int(f) for r in results for f in r.get("eval_frames", {})})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CSV_FIELDS, *(f"test_top1_at_{f}_frames" for f in frames)])
        for r in results:
            writer.writerow(
                [r.get(k, "") for k in CSV_FIELDS]
                + [r.get("eval_frames", {}).get(str(f), "") for f in frames]
            )


def _cell(values: list[float], style: str) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if style == "params":
        return f"{mean / 1e6:.2f}M"
    if style == "seconds":
        return f"{mean:.0f} s" if mean < 120 else f"{mean / 60:.1f} min"
    text = style.format(mean)
    if len(values) > 1:
        text += " ± " + style.format(statistics.stdev(values))
    return text


def group_by_variant(results: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs of the same variant together, in the order the suite ran them."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        grouped.setdefault(r["variant"], []).append(r)
    return grouped


def by_series(results: Sequence[dict[str, Any]]) -> dict[str, dict[float, list[float]]]:
    """Test top-1 of the runs that name a series: series -> label fraction -> one per seed."""
    table: dict[str, dict[float, list[float]]] = {}
    for r in results:
        if r.get("series") and r.get("test_top1") is not None:
            fractions = table.setdefault(r["series"], {})
            fractions.setdefault(r.get("label_fraction", 1.0), []).append(r["test_top1"])
    return table


def label_efficiency(results: Sequence[dict[str, Any]]) -> list[str]:
    """A table of test top-1 per series (rows) and label fraction (columns); [] without series."""
    table = by_series(results)
    fractions = sorted({f for row in table.values() for f in row})
    if not table:
        return []
    lines = [
        "## Label efficiency",
        "",
        "Test video top-1 (mean ± std over seeds) against the share of training labels used.",
        "",
        "| Start | " + " | ".join(f"{f:.0%} labels" for f in fractions) + " |",
        "|---" * (len(fractions) + 1) + "|",
    ]
    for series, row in table.items():
        cells = [_cell(row.get(f, []), "{:.4f}") for f in fractions]
        lines.append(f"| {series} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(
    results: Sequence[dict[str, Any]],
    sections: dict[str, list[str]],
    *,
    title: str,
    notes: str = "",
) -> str:
    """One table per section, plus a test-time clip length table when the suite swept it."""
    grouped = group_by_variant(results)
    seeds = sorted({r["seed"] for r in results})
    lines = [f"# {title}", ""]
    if notes:
        lines += [notes, ""]
    lines += [f"Seeds: {', '.join(map(str, seeds))}; cells are the mean ± std over seeds.", ""]
    for section, names in sections.items():
        lines += [
            f"## {section}" if section else "## Results",
            "",
            "| Architecture | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
            "|---" * (len(COLUMNS) + 1) + "|",
        ]
        for name in names:
            runs = grouped.get(name, [])
            cells = [
                _cell([r[k] for r in runs if r.get(k) is not None], style)
                for k, _, style in COLUMNS
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += label_efficiency(results)
    frames = sorted({int(f) for r in results for f in r.get("eval_frames", {})})
    if frames:
        lines += [
            "## Test-time clip length",
            "",
            "Test video top-1 of each best checkpoint, re-tested with longer or shorter "
            "clips at the training frame rate.",
            "",
            "| Architecture | " + " | ".join(f"{f} frames" for f in frames) + " |",
            "|---" * (len(frames) + 1) + "|",
        ]
        for name, runs in grouped.items():
            cells = [
                _cell(
                    [r["eval_frames"][str(f)] for r in runs if str(f) in r["eval_frames"]], "{:.4f}"
                )
                for f in frames
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
