"""Video-level evaluation: clip scores aggregated per video, then accuracy metrics.

Evaluation datasets yield one item per (video, clip); a video's prediction combines the
scores of all its clips. Under DDP the sampler pads ranks with repeated items, so clips
are de-duplicated by (video, clip) before anything is counted: every video counts once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
)


def unique_clips(video_index: Tensor, clip_index: Tensor) -> Tensor:
    """Positions of the first occurrence of each (video, clip) pair."""
    keys = video_index.long() * (int(clip_index.max()) + 1) + clip_index.long()
    _, inverse = torch.unique(keys, return_inverse=True)
    positions = torch.arange(len(keys), device=keys.device)
    first = torch.full((int(inverse.max()) + 1,), len(keys), device=keys.device)
    return first.scatter_reduce(0, inverse, positions, reduce="amin")


def aggregate_clips(
    video_index: Tensor, clip_logits: Tensor, *, method: str = "mean"
) -> tuple[Tensor, Tensor]:
    """Combine clip logits (C, K) into video scores (V, K), V = distinct videos, sorted.

    mean: the mean of the clips' softmax. majority: the fraction of clips voting for each
    class (their argmax), ties broken by the mean softmax.
    """
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
    if method == "majority":
        votes = F.one_hot(probs.argmax(dim=-1), probs.shape[1]).float()
        fraction = torch.zeros_like(mean).index_add_(0, inverse, votes) / counts[:, None]
        return videos, fraction + mean * 1e-3
    raise ValueError(f"aggregate method {method!r} is not one of: mean, majority")


@dataclass
class EvaluationResult:
    """Video- and clip-level metrics; `confusion` is (K, K), rows = true class."""

    video_top1: float
    video_top5: float
    mean_class_accuracy: float
    clip_top1: float
    loss: float
    num_videos: int
    num_clips: int
    confusion: Tensor
    video_index: Tensor
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
    clip_index: Tensor,
    clip_logits: Tensor,
    labels: Tensor,
    *,
    num_classes: int,
    method: str = "mean",
) -> EvaluationResult:
    """All evaluation metrics from every clip's logits, duplicates (DDP padding) removed."""
    keep = unique_clips(video_index, clip_index)
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
        video_scores=scores,
    )
