"""The LightningModule that trains a classifier and evaluates it at video level.

Batches carry uint8 clips (B, T, H, W, 3); they are normalised to float32 (B, 3, T, H, W)
on the device, after the transfer. Training sees one random clip per video; evaluation
sees every view (clip, or crop of a clip) of every video, and `VideoScores` combines the
views of each video across all ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from convperceiver.config import OptimConfig
from convperceiver.engine.clip_module import ClipModule
from convperceiver.engine.metrics import EvaluationResult, VideoScores
from convperceiver.models import FreezableClassifier
from convperceiver.models.runtime import set_memory_format


class VideoClassifierModule(ClipModule):
    """Trains on random clips; evaluates videos by aggregating the scores of their views.

    Args:
        model: the classifier; its weights are the checkpoint's `state_dict` ("model.*").
        class_names: in label order.
        mean, std: per-channel pixel statistics in [0, 1] units, applied on the device.
        optim: optimizer and schedule settings (its `label_smoothing` is not read here).
        label_smoothing: of the training loss.
        aggregate: how a video's views vote: "mean" of softmax, or "majority" of argmax.
        channels_last: lay the CNN out channels_last_3d.
        fused_optimizer: a fused Adam/AdamW step; off where fp16 loss scaling clips gradients.
        run_config: the run's resolved config, only stored (in the checkpoint's
            hyper-parameters), for rebuilding the model and data from a checkpoint.
    """

    def __init__(
        self,
        *,
        model: FreezableClassifier,
        class_names: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        optim: OptimConfig,
        label_smoothing: float = 0.0,
        aggregate: str = "mean",
        channels_last: bool = True,
        fused_optimizer: bool = True,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(mean=mean, std=std, optim=optim, fused_optimizer=fused_optimizer)
        # A dataclass would not load under weights_only=True; its values are in run_config.
        self.save_hyperparameters(ignore=["model", "optim"])
        self.model = set_memory_format(model, channels_last=channels_last)
        self.class_names = list(class_names)
        self.val_scores = VideoScores(num_classes=len(self.class_names), aggregate=aggregate)
        self.test_scores = VideoScores(num_classes=len(self.class_names), aggregate=aggregate)
        self.last_result: dict[str, EvaluationResult] = {}

    def forward(self, clip: Tensor) -> Tensor:
        """(B, 3, T, H, W) normalised float -> logits (B, K)."""
        return self.model(clip)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self(batch["clip"])
        loss = F.cross_entropy(logits, batch["label"], label_smoothing=self.hparams.label_smoothing)
        accuracy = (logits.argmax(dim=-1) == batch["label"]).float().mean()
        batch_size = len(batch["label"])
        self.log(
            "train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size
        )
        self.log("train/clip_top1", accuracy, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log_substituted(batch["substituted"])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._score(batch, self.val_scores)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_result("val", self.val_scores.compute())
        self.val_scores.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._score(batch, self.test_scores)

    def on_test_epoch_end(self) -> None:
        self._log_result("test", self.test_scores.compute())
        self.test_scores.reset()

    def _score(self, batch: dict[str, Any], scores: VideoScores) -> None:
        self.log(
            "data/dropped_views",
            float(batch["dropped"]),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            sync_dist=True,
            batch_size=1,
        )
        clips = batch["clip"]
        # A batch whose views all failed to decode holds no clip: nothing to run, but the empty
        # update keeps the states of every rank alike in shape for the gather.
        logits = self(clips) if len(clips) else clips.new_zeros(0, scores.num_classes)
        scores.update(batch["video_index"], batch["view_index"], logits, batch["label"])

    def _log_result(self, stage: str, result: EvaluationResult | None) -> None:
        if result is None:
            return
        self.last_result[stage] = result
        # Every rank computed the same result from the gathered views: no reduction needed.
        for name, value in result.metrics().items():
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=name == "video_top1",
                sync_dist=False,
                rank_zero_only=False,
            )
