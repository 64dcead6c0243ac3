"""Class probabilities for any video file: every evaluation view, one model, video aggregation.

video -> decode_views (V, T, crop, crop, 3) uint8 -> normalize_clips on the model's device
      -> logits (V, K) -> one video's scores (K,), aggregated over all V views
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from convperceiver.config import Config
from convperceiver.data.eval_clips import EvalClipSpec, decode_views, eval_clip_spec
from convperceiver.data.transforms import normalize_clips
from convperceiver.engine.metrics import aggregate_clips
from convperceiver.errors import ConvPerceiverError
from convperceiver.models import FreezableClassifier
from convperceiver.models.runtime import cast_for_autocast, memory_format, set_memory_format


@dataclass
class Prediction:
    path: str
    labels: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    num_clips: int = 0  # windows over the video
    num_views: int = 0  # clips x crops the scores come from
    error: str = ""

    def to_dict(self) -> dict:
        if self.error:
            return {"path": self.path, "error": self.error}
        return {
            "path": self.path,
            "num_clips": self.num_clips,
            "num_views": self.num_views,
            "top": [
                {"label": label, "probability": round(p, 6)}
                for label, p in zip(self.labels, self.probabilities, strict=True)
            ],
        }


class VideoPredictor:
    """A trained model with its evaluation clips, normalisation and aggregation.

    Runs on the model's device. With `amp` (e.g. torch.bfloat16) the model runs under autocast
    with its weights cast once: much faster where the CPU has native bf16 (speed and top-1
    agreement with fp32 are in benchmarks/RESULTS.md).
    """

    def __init__(
        self,
        model: FreezableClassifier,
        *,
        class_names: Sequence[str],
        spec: EvalClipSpec,
        mean: Sequence[float],
        std: Sequence[float],
        aggregate: str = "mean",
        channels_last: bool = True,
        amp: torch.dtype | None = None,
        batch_size: int = 8,
    ) -> None:
        self.model = set_memory_format(model, channels_last=channels_last).eval()
        self.memory_format = memory_format(channels_last=channels_last)
        self.amp = amp
        if amp is not None:
            cast_for_autocast(self.model, amp)
        self.class_names = list(class_names)
        self.spec = spec
        self.mean, self.std = list(mean), list(std)
        self.aggregate = aggregate
        self.batch_size = batch_size

    @classmethod
    def from_config(
        cls,
        model: FreezableClassifier,
        config: Config,
        class_names: Sequence[str],
        *,
        amp: torch.dtype | None = None,
        batch_size: int = 8,
    ) -> VideoPredictor:
        """A predictor with a checkpoint config's evaluation clips, normalisation and format."""
        return cls(
            model,
            class_names=class_names,
            spec=eval_clip_spec(config.data, config.eval),
            mean=config.data.mean,
            std=config.data.std,
            aggregate=config.eval.aggregate,
            channels_last=config.trainer.channels_last,
            amp=amp,
            batch_size=batch_size,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def clips(self, path: str | Path) -> Tensor:
        """(V, T, crop, crop, 3) uint8: every view of every clip spread over the whole video."""
        return decode_views(path, self.spec)

    def logits(self, clips: Tensor) -> Tensor:
        """(V, K) fp32 logits of uint8 views (V, T, crop, crop, 3), batch by batch."""
        device = self.device
        outputs = []
        with (
            torch.inference_mode(),
            torch.autocast(device.type, self.amp, enabled=self.amp is not None),
        ):
            for batch in clips.split(self.batch_size):
                inputs = normalize_clips(batch.to(device), self.mean, self.std)
                outputs.append(self.model(inputs.contiguous(memory_format=self.memory_format)))
        return torch.cat(outputs).float()

    def video_scores(self, clips: Tensor) -> Tensor:
        """(K,) video-level class scores of one video's views."""
        logits = self.logits(clips)
        video = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        _, scores = aggregate_clips(video, logits, method=self.aggregate)
        return scores[0].cpu()

    def scores(self, path: str | Path) -> tuple[Tensor, int]:
        """Video-level class scores (K,) and the number of views they came from."""
        clips = self.clips(path)
        return self.video_scores(clips), len(clips)

    def predict(self, path: str | Path, *, topk: int = 5) -> Prediction:
        """Top-k classes, or the reason the file could not be read."""
        try:
            scores, num_views = self.scores(path)
        except ConvPerceiverError as error:
            return Prediction(path=str(path), error=str(error))
        top = scores.topk(min(topk, len(scores)))
        return Prediction(
            path=str(path),
            labels=[self.class_names[i] for i in top.indices.tolist()],
            probabilities=top.values.tolist(),
            num_clips=num_views // self.spec.views_per_clip,
            num_views=num_views,
        )
