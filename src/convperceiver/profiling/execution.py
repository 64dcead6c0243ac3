"""How a benchmark runs a model, and on what.

Settings: "stock" (as torchvision runs it) or "ours" (the fastest settings that keep the
numerics), as autocast dtype, the CNN's memory format and torch.compile. Clips: synthetic
moving shapes, normalised with `normalize_clips` like the config's data.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from convperceiver.config import Config
from convperceiver.data.synthetic_render import SYNTHETIC_CLASSES, render_video
from convperceiver.data.transforms import normalize_clips
from convperceiver.models.runtime import (
    cast_for_autocast,
    inference_dtype,
    memory_format,
    set_memory_format,
)


@dataclass(frozen=True)
class Settings:
    """How a model runs: autocast dtype (None = fp32), the CNN's memory format, compile, and
    whether Adam steps fused (ours) or per tensor group (torch's default, the stock peer)."""

    amp: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    fused_optimizer: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "dtype": "bfloat16 autocast" if self.amp == torch.bfloat16 else "float32",
            "memory_format": "channels_last_3d" if self.channels_last else "channels_first",
            "compile": self.compile,
            "optimizer": "fused" if self.fused_optimizer else "foreach",
        }

    def prepare(self, template: nn.Module, device: torch.device, *, train: bool) -> nn.Module:
        """An eager copy of `template` on `device` in this memory format; for inference under
        autocast, with the weights autocast would cast at every call cast once."""
        model = copy.deepcopy(template).to(device).train(train)
        set_memory_format(model, channels_last=self.channels_last)
        if self.amp is not None and not train:
            cast_for_autocast(model, self.amp)
        return model

    def runnable(self, model: nn.Module) -> Callable[[Tensor], Tensor]:
        return torch.compile(model) if self.compile else model

    def input(self, clips: Tensor) -> Tensor:
        """The clips in this memory format. A convolution runs in channels_last_3d when its
        input is, whatever its weights' format: a stock run must get channels-first clips."""
        return clips.contiguous(memory_format=memory_format(channels_last=self.channels_last))

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp)


STOCK = Settings()


def ours_settings(
    device: torch.device, *, amp: str, train_amp: bool, channels_last: bool, compile: bool
) -> tuple[Settings, Settings]:
    """(training, inference) settings of "ours"; amp: auto | bf16 | off, for inference."""
    infer_amp = inference_dtype(amp, device)
    common = dict(channels_last=channels_last, compile=compile)
    train = Settings(amp=torch.bfloat16 if train_amp else None, fused_optimizer=True, **common)
    return train, Settings(amp=infer_amp, **common)


def synthetic_batches(config: Config, *, batch_size: int, count: int) -> list[Tensor]:
    """`count` batches of (B, 3, T, H, W) float clips of the synthetic action set, the same for
    every run, normalised as training normalises its batches, channels-first."""
    data = config.data
    batches = []
    for first in range(0, batch_size * count, batch_size):
        videos = [
            render_video(
                SYNTHETIC_CLASSES[index % len(SYNTHETIC_CLASSES)],
                seed=1,
                index=index,
                frames=data.num_frames,
                size=data.crop_size,
            )
            for index in range(first, first + batch_size)
        ]
        pixels = torch.from_numpy(np.stack(videos))  # (B, T, H, W, 3) uint8
        # Channels-first: each Settings lays its input out as it runs it (`Settings.input`).
        batches.append(normalize_clips(pixels, data.mean, data.std).contiguous())
    return batches
