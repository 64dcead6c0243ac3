"""Video-level evaluation: view scores aggregated per video, then accuracy metrics.

Evaluation datasets yield one item per view of a video (a clip, or one crop of a clip);
(video_index, view_index) names an item uniquely. A video's prediction combines the scores
of all its views. Under DDP the sampler pads ranks with repeated items, so views are
de-duplicated by (video, view) before anything is counted: every view and every video
counts once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
)
from torchmetrics.utilities import dim_zero_cat

AGGREGATES = ("mean", "majority")


def unique_views(video_index: Tensor, view_index: Tensor) -> Tensor:
    """Positions of the first occurrence of each (video, view) pair, in pair order."""
    pairs = torch.stack([video_index.long(), view_index.long()], dim=1)  # (C, 2)
    _, inverse = torch.unique(pairs, dim=0, return_inverse=True)
    positions = torch.arange(len(pairs), device=pairs.device)
    first = torch.full((int(inverse.max()) + 1,), len(pairs), device=pairs.device)
    return first.scatter_reduce(0, inverse, positions, reduce="amin")


def aggregate_clips(
    video_index: Tensor, clip_logits: Tensor, *, method: str = "mean"
) -> tuple[Tensor, Tensor]:
    """Combine view logits (C, K) into video scores (V, K), V = distinct videos, sorted.

    mean: the mean of the views' softmax. majority: the fraction of views voting for each
    class (their argmax), ties broken by the mean softmax.
    """
    if method not in AGGREGATES:
        raise ValueError(f"aggregate method {method!r} is not one of: {', '.join(AGGREGATES)}")
    videos, inverse = torch.unique(video_index, return_inverse=True)
    probs = clip_logits.float().softmax(dim=-1)
    counts = torch.zeros(len(videos), device=probs.device).index_add_(
        0, inverse, torch.ones_like(inverse, dtype=torch.float)
    )
    mean = (
        torch.zeros(len(videos), probs.shape[1], device=probs.device).index_add_(0, inverse, probs)
        / counts[:, None]
    )
    if method == "mean":
        return videos, mean
    votes = F.one_hot(probs.argmax(dim=-1), probs.shape[1]).float()
    fraction = torch.zeros_like(mean).index_add_(0, inverse, votes) / counts[:, None]
    return videos, fraction + mean * 1e-3


@dataclass
class EvaluationResult:
    """Video- and view-level metrics; `confusion` is (K, K), rows = true class.

    `video_index`, `video_labels` and `video_scores` (V, K) are per video, sorted by index.
    """

    video_top1: float
    video_top5: float
    mean_class_accuracy: float
    clip_top1: float
    loss: float
    num_videos: int
    num_clips: int
    confusion: Tensor
    video_index: Tensor
    video_labels: Tensor
    video_scores: Tensor

    def metrics(self) -> dict[str, float]:
        return {
            "video_top1": self.video_top1,
            "video_top5": self.video_top5,
            "mean_class_accuracy": self.mean_class_accuracy,
            "clip_top1": self.clip_top1,
            "loss": self.loss,
            "num_videos": float(self.num_videos),
            "num_clips": float(self.num_clips),
        }


def evaluate_clips(
    video_index: Tensor,
    view_index: Tensor,
    clip_logits: Tensor,
    labels: Tensor,
    *,
    num_classes: int,
    method: str = "mean",
) -> EvaluationResult:
    """All evaluation metrics from every view's logits, duplicates (DDP padding) removed."""
    keep = unique_views(video_index, view_index)
    video_index, clip_logits, labels = video_index[keep], clip_logits[keep].float(), labels[keep]
    videos, scores = aggregate_clips(video_index, clip_logits, method=method)
    video_labels = torch.zeros_like(videos).scatter_(
        0, torch.searchsorted(videos, video_index), labels
    )
    top5 = min(5, num_classes)
    return EvaluationResult(
        video_top1=multiclass_accuracy(scores, video_labels, num_classes, average="micro").item(),
        video_top5=multiclass_accuracy(
            scores, video_labels, num_classes, top_k=top5, average="micro"
        ).item(),
        mean_class_accuracy=multiclass_accuracy(
            scores, video_labels, num_classes, average="macro"
        ).item(),
        clip_top1=multiclass_accuracy(clip_logits, labels, num_classes, average="micro").item(),
        loss=F.cross_entropy(clip_logits, labels).item(),
        num_videos=len(videos),
        num_clips=len(keep),
        confusion=multiclass_confusion_matrix(scores, video_labels, num_classes),
        video_index=videos,
        video_labels=video_labels,
        video_scores=scores,
    )


class VideoScores(Metric):
    """Every view's logits, gathered from all ranks, scored per video by `evaluate_clips`.

    The states are concatenated lists, so torchmetrics gathers them across DDP ranks (uneven
    lengths included) before `compute`, which then sees every rank's views on every rank.
    """

    full_state_update = False

    def __init__(self, *, num_classes: int, aggregate: str = "mean") -> None:
        super().__init__()
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate={aggregate!r} is not one of: {', '.join(AGGREGATES)}")
        self.num_classes = num_classes
        self.aggregate = aggregate
        for name in ("video_index", "view_index", "logits", "labels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self, video_index: Tensor, view_index: Tensor, logits: Tensor, labels: Tensor
    ) -> None:
        """One batch of views; an empty batch (all views dropped) still updates, with (0, K)."""
        if logits.shape != (len(labels), self.num_classes):
            raise ValueError(
                f"logits of shape {tuple(logits.shape)} for {len(labels)} views of "
                f"{self.num_classes} classes"
            )
        self.video_index.append(video_index.long())
        self.view_index.append(view_index.long())
        self.logits.append(logits.detach().float())
        self.labels.append(labels.long())

    def compute(self) -> EvaluationResult | None:
        """The video-level result; None when no rank saw a single view."""
        if isinstance(self.logits, list) and not self.logits:
            return None
        logits = dim_zero_cat(self.logits).view(-1, self.num_classes)
        if len(logits) == 0:
            return None
        return evaluate_clips(
            dim_zero_cat(self.video_index).long(),
            dim_zero_cat(self.view_index).long(),
            logits,
            dim_zero_cat(self.labels).long(),
            num_classes=self.num_classes,
            method=self.aggregate,
        )
