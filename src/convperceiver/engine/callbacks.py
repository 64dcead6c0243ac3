"""Clips per second of training and of testing, measured on the batches themselves.

Lightning's `ThroughputMonitor` cannot give these figures: it only sends them to the loggers
(`evaluate` has none), every `log_every_n_steps` training steps (so the last steps go
unreported), during a test only if the fit's step count falls on that interval, and its
rates need a full window of 100 batches; the totals it keeps are private.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl


class ClipThroughput(pl.Callback):
    """Counts clips and wall seconds per stage; loading time between batches is included."""

    def __init__(self) -> None:
        self.clips = {"train": 0, "test": 0}
        self.seconds = {"train": 0.0, "test": 0.0}
        self._started: float | None = None

    def _start(self) -> None:
        self._started = time.perf_counter()

    def _stop(self, stage: str, batch: dict[str, Any]) -> None:
        self.clips[stage] += len(batch["label"])
        now = time.perf_counter()
        self.seconds[stage] += now - (self._started or now)
        self._started = now

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._stop("train", batch)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._stop("test", batch)

    def clips_per_second(self) -> dict[str, float]:
        return {
            f"{stage}_clips_per_s": self.clips[stage] / self.seconds[stage]
            for stage in self.clips
            if self.seconds[stage] > 0
        }
