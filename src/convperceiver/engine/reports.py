"""The files every run leaves behind: metrics JSON, confusion matrix (CSV and PNG), per-video
predictions (CSV) and curves."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from convperceiver.engine.metrics import EvaluationResult


def write_evaluation(
    result: EvaluationResult, class_names: list[str], folder: Path, *, stage: str = "test"
) -> dict[str, float]:
    """Write `<stage>_metrics.json`, `<stage>_confusion_matrix.csv` and `.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = result.metrics()
    (folder / f"{stage}_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    confusion = result.confusion.cpu().tolist()
    with open(folder / f"{stage}_confusion_matrix.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, confusion, strict=True):
            writer.writerow([name, *row])
    plot_confusion(
        confusion,
        class_names,
        folder / f"{stage}_confusion_matrix.png",
        title=f"{stage}: video top-1 {metrics['video_top1']:.3f}",
    )
    return metrics


def write_predictions(
    result: EvaluationResult,
    paths: Sequence[str],
    class_names: Sequence[str],
    path: Path,
    *,
    topk: int = 5,
) -> None:
    """One row per video: its file, true class, predicted class and its top-k classes.

    `paths[i]` is the file of video index i (the dataset's records, in order). Scores are the
    aggregated video scores: mean softmax, or vote fractions under majority voting.
    """
    topk = min(topk, len(class_names))
    scores, classes = result.video_scores.float().topk(topk, dim=-1)  # (V, topk) each
    header = ["path", "label", "prediction"]
    for rank in range(1, topk + 1):
        header += [f"top{rank}_class", f"top{rank}_prob"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        rows = zip(result.video_index.tolist(), result.video_labels.tolist(), strict=True)
        for (video, label), top, top_scores in zip(rows, classes, scores, strict=True):
            row = [paths[video], class_names[label], class_names[int(top[0])]]
            for index, score in zip(top.tolist(), top_scores.tolist(), strict=True):
                row += [class_names[index], f"{score:.6f}"]
            writer.writerow(row)


def plot_confusion(
    matrix: list[list[int]], class_names: list[str], path: Path, *, title: str
) -> None:
    size = max(4.0, 0.28 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(class_names) <= 20:
        for row, values in enumerate(matrix):
            for column, value in enumerate(values):
                if value:
                    axes.text(column, row, str(value), ha="center", va="center", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def read_csv_logs(folder: Path) -> dict[str, list[tuple[float, float]]]:
    """Per-epoch (epoch, value) series from every Lightning CSV log under `folder`."""
    series: dict[str, dict[float, float]] = defaultdict(dict)
    for path in sorted(folder.glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime):
        epoch = -1.0
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                # The learning rate is logged with no epoch, just before the epoch it applies to.
                epoch = float(row["epoch"]) if row.get("epoch") else epoch + 1
                for key, value in row.items():
                    if key not in ("epoch", "step") and value:
                        series[key][epoch] = float(value)
    return {key: sorted(values.items()) for key, values in series.items()}


def plot_curves(log_folder: Path, path: Path) -> bool:
    """Loss, accuracy and learning-rate curves per epoch; False when there is nothing to plot."""
    series = read_csv_logs(log_folder)
    panels = [
        ("loss", ["train/loss_epoch", "val/loss"]),
        ("accuracy", ["train/clip_top1", "val/clip_top1", "val/video_top1"]),
        ("learning rate", [key for key in series if key.startswith("lr-")]),
    ]
    panels = [(title, [k for k in keys if k in series]) for title, keys in panels]
    panels = [(title, keys) for title, keys in panels if keys]
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    for axis, (title, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            epochs, values = zip(*series[key], strict=True)
            axis.plot(epochs, values, marker="o", markersize=3, label=key)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
