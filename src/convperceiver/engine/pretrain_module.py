"""The LightningModule of masked video modelling: random tube masks, loss on masked tubes.

Batches are those of classification (uint8 clips, normalised on the device); labels are
ignored. Training draws a new mask for every clip at every step. Validation scores the same
clips under the same masks every epoch (a generator seeded by the batch index), so `val/loss`
is comparable from epoch to epoch, and after each epoch draws `reconstructions/epoch_NNN.png`
from the first validation clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from convperceiver.config import OptimConfig
from convperceiver.engine.clip_module import ClipModule
from convperceiver.engine.reconstructions import plot_reconstructions
from convperceiver.models.masking import upsample_mask
from convperceiver.models.pretraining import MaskedVideoModel, PretrainOutput
from convperceiver.models.runtime import set_memory_format


class MaskedPretrainingModule(ClipModule):
    """Pretrains a classifier's encoder by reconstructing masked pixel tubes.

    Args:
        model: the encoder with its decoder; the checkpoint's `state_dict` is "model.*", and
            "model.encoder.*" holds the classifier's own keys for `model.init_from`.
        mean, std: per-channel pixel statistics in [0, 1] units, applied on the device.
        optim: optimizer and schedule settings.
        channels_last: lay the CNN out channels_last_3d.
        fused_optimizer: a fused Adam/AdamW step.
        recon_clips: validation clips drawn after each epoch; 0 draws none.
        figure_dir: where the reconstruction pictures go (the run folder).
        run_config: the run's resolved config, only stored, for rebuilding from a checkpoint.
    """

    def __init__(
        self,
        *,
        model: MaskedVideoModel,
        mean: Sequence[float],
        std: Sequence[float],
        optim: OptimConfig,
        channels_last: bool = True,
        fused_optimizer: bool = True,
        recon_clips: int = 4,
        figure_dir: str | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(mean=mean, std=std, optim=optim, fused_optimizer=fused_optimizer)
        self.save_hyperparameters(ignore=["model", "optim", "figure_dir"])
        model.encoder = set_memory_format(model.encoder, channels_last=channels_last)
        self.model = model
        self.figure_dir = Path(figure_dir) if figure_dir else None
        self._shown: Tensor | None = None

    def forward(self, clip: Tensor, mask: Tensor) -> PretrainOutput:
        return self.model(clip, mask)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        clip = batch["clip"]
        output = self(clip, self.model.random_mask(clip))
        self._log_losses("train", output, len(clip))
        self.log_substituted(batch["substituted"])
        return output.loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        clip = batch["clip"]
        if not len(clip):
            return
        output = self(clip, self._fixed_mask(clip, batch_idx))
        self._log_losses("val", output, len(clip))
        if batch_idx == 0 and self.hparams.recon_clips:
            self._shown = clip[: self.hparams.recon_clips]

    def on_validation_epoch_end(self) -> None:
        shown, self._shown = self._shown, None
        if shown is None or self.trainer.sanity_checking or self.figure_dir is None:
            return
        if self.trainer.is_global_zero:
            self.draw_reconstructions(shown, self.figure_dir / "reconstructions")

    def draw_reconstructions(self, clip: Tensor, folder: Path) -> Path:
        """One PNG of `clip` (normalised, B first) under this epoch's model and fixed masks."""
        mask = self._fixed_mask(clip, 0)
        rebuilt = self.model.reconstruct(clip, mask)
        hidden = upsample_mask(mask, tuple(clip.shape[2:]))  # (B, 1, T, H, W), True = masked
        visible = clip.masked_fill(hidden, 0.0)  # 0 is the mean colour after normalisation
        epoch = self.current_epoch
        return plot_reconstructions(
            clip,
            visible,
            rebuilt,
            folder / f"epoch_{epoch:03d}.png",
            mean=self.normalizer.mean.tolist(),
            std=self.normalizer.std.tolist(),
            title=f"epoch {epoch}: mask ratio {self.model.mask_ratio}"
            + (
                "\nmasked tubes drawn with their own mean and std, as VideoMAE draws them"
                if self.model.normalize_target
                else ""
            ),
        )

    def _fixed_mask(self, clip: Tensor, batch_idx: int) -> Tensor:
        return self.model.random_mask(clip, generator=torch.Generator().manual_seed(batch_idx))

    def _log_losses(self, stage: str, output: PretrainOutput, batch_size: int) -> None:
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            output.loss,
            prog_bar=True,
            on_step=on_step,
            on_epoch=True,
            sync_dist=not on_step,
            batch_size=batch_size,
        )
        parts = {"pixel_loss": output.pixel_loss, "teacher_loss": output.teacher_loss}
        for name, value in parts.items():
            if value is not None:
                self.log(
                    f"{stage}/{name}",
                    value,
                    on_step=False,
                    on_epoch=True,
                    sync_dist=True,
                    batch_size=batch_size,
                )
