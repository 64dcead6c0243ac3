"""What both LightningModules share: uint8 clips normalised on the device, epoch-seeded
training clips, the optimizer and its per-step schedule, and the data-problem counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from torch import Tensor, nn

from convperceiver.config import OptimConfig
from convperceiver.data.transforms import ClipNormalizer
from convperceiver.engine.optim import build_optimizer, lr_schedule


class ClipModule(pl.LightningModule):
    """A LightningModule over `self.model` fed by `VideoDataModule` batches."""

    def __init__(
        self,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        optim: OptimConfig,
        fused_optimizer: bool = True,
    ) -> None:
        super().__init__()
        self.optim = optim
        self.fused_optimizer = fused_optimizer
        self.normalizer = ClipNormalizer(mean=mean, std=std)
        self.model: nn.Module

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        batch["clip"] = self.normalizer(batch["clip"])
        return batch

    def on_train_epoch_start(self) -> None:
        # The training set draws its clips from (seed, epoch, index): tell every worker the epoch.
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)

    def log_substituted(self, substituted: Tensor) -> None:
        """Broken training videos replaced by others in this batch, summed over the epoch."""
        self.log(
            "data/substituted_videos",
            substituted.sum().float(),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            sync_dist=True,
            batch_size=len(substituted),
        )

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.optim, fused=self.fused_optimizer)
        scheduler = lr_schedule(
            optimizer,
            self.optim,
            total_steps=int(self.trainer.estimated_stepping_batches),
            epochs=self.trainer.max_epochs,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
