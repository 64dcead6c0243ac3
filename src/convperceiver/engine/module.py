"""The LightningModule that trains a classifier and evaluates it at video level."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from convperceiver.config import Config, OptimConfig, to_dict
from convperceiver.engine.metrics import EvaluationResult, evaluate_clips
from convperceiver.models import FreezableClassifier
from convperceiver.models.runtime import set_memory_format

CHECKPOINT_KEY = "convperceiver"


def build_optimizer(
    model: FreezableClassifier, optim: OptimConfig, *, fused: bool = True
) -> torch.optim.Optimizer:
    """Two parameter groups, the pretrained CNN and the new modules, each with its own lr.

    Adam and AdamW run fused (one kernel over all tensors, about 4x faster a step on CPU) unless
    ``fused`` is off: fp16 loss scaling cannot clip gradients before a fused step unscales them.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [
        {
            "params": [p for n, p in trainable if n.startswith("backbone.")],
            "lr": optim.cnn_lr or optim.lr,
            "name": "cnn",
        },
        {
            "params": [p for n, p in trainable if not n.startswith("backbone.")],
            "lr": optim.lr,
            "name": "attention",
        },
    ]
    groups = [group for group in groups if group["params"]]
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=optim.momentum, weight_decay=optim.weight_decay)
    optimizer_class = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(groups, weight_decay=optim.weight_decay, fused=fused)


def lr_factor(step: int, *, optim: OptimConfig, steps_per_epoch: int, total_steps: int) -> float:
    """The multiplier of each group's lr at an optimizer step: warm-up, then the schedule."""
    warmup_steps = round(optim.warmup_epochs * steps_per_epoch)
    if step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    if optim.scheduler == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if optim.scheduler == "step":
        return optim.gamma ** (step // (optim.step_size * steps_per_epoch))
    return 1.0


class VideoClassifierModule(pl.LightningModule):
    """Trains on random clips; evaluates videos by aggregating their uniform clips."""

    def __init__(
        self, *, model: FreezableClassifier, config: Config, class_names: list[str]
    ) -> None:
        super().__init__()
        self.model = set_memory_format(model, channels_last=config.trainer.channels_last)
        self.config = config
        self.class_names = class_names
        self.num_classes = len(class_names)
        self._outputs: list[dict[str, Tensor]] = []
        self.last_result: dict[str, EvaluationResult] = {}

    def forward(self, clip: Tensor) -> Tensor:
        return self.model(clip)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        logits = self(batch["clip"])
        loss = F.cross_entropy(
            logits, batch["label"], label_smoothing=self.config.optim.label_smoothing
        )
        accuracy = (logits.argmax(dim=-1) == batch["label"]).float().mean()
        batch_size = len(batch["label"])
        self.log(
            "train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size
        )
        self.log("train/clip_top1", accuracy, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log(
            "data/skipped_videos",
            batch["skipped"].sum().float(),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            sync_dist=True,
            batch_size=batch_size,
        )
        return loss

    def _collect(self, batch: dict[str, Any]) -> None:
        # A clip that failed to decode arrives as zeros marked `skipped`: it must not vote.
        keep = batch["skipped"] == 0
        if not keep.any():
            return
        self._outputs.append(
            {
                "video_index": batch["video_index"][keep],
                "clip_index": batch["clip_index"][keep],
                "logits": self(batch["clip"][keep]).float(),
                "label": batch["label"][keep],
            }
        )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect(batch)

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    def on_test_epoch_start(self) -> None:
        self._outputs = []

    def _gathered(self) -> dict[str, Tensor]:
        """Every rank's clips, concatenated; ranks may hold different counts."""
        local = {key: torch.cat([o[key] for o in self._outputs]) for key in self._outputs[0]}
        self._outputs = []
        if self.trainer.world_size == 1:
            return local
        count = torch.tensor([len(local["label"])], device=self.device)
        counts = self.all_gather(count).flatten().tolist()
        largest = max(counts)
        gathered = {}
        for key, value in local.items():
            padded = torch.zeros(largest, *value.shape[1:], dtype=value.dtype, device=value.device)
            padded[: len(value)] = value
            every = self.all_gather(padded)  # (world, largest, ...)
            gathered[key] = torch.cat([every[rank, :n] for rank, n in enumerate(counts)])
        return gathered

    def _evaluate(self, stage: str) -> None:
        if not self._outputs:
            return
        clips = self._gathered()
        result = evaluate_clips(
            clips["video_index"],
            clips["clip_index"],
            clips["logits"],
            clips["label"],
            num_classes=self.num_classes,
            method=self.config.eval.aggregate,
        )
        self.last_result[stage] = result
        # Every rank holds the same gathered clips, so the values agree without a reduction.
        for name, value in result.metrics().items():
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=name == "video_top1",
                sync_dist=False,
                rank_zero_only=False,
            )

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._evaluate("val")
        self._outputs = []

    def on_test_epoch_end(self) -> None:
        self._evaluate("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the config and class names, so a checkpoint alone rebuilds the model."""
        checkpoint[CHECKPOINT_KEY] = {
            "config": to_dict(self.config),
            "class_names": list(self.class_names),
        }

    def configure_optimizers(self) -> dict[str, Any]:
        trainer = self.config.trainer
        clips_fp16 = trainer.precision == "16-mixed" and trainer.gradient_clip_val > 0
        optimizer = build_optimizer(self.model, self.config.optim, fused=not clips_fp16)
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, math.ceil(total_steps / max(1, self.trainer.max_epochs)))
        optim = self.config.optim
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: lr_factor(
                step, optim=optim, steps_per_epoch=steps_per_epoch, total_steps=total_steps
            ),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
