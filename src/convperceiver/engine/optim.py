"""The optimizer and its learning-rate schedule, built from the `optim` config section.

build_optimizer(model, optim)          -> parameter groups (pretrained CNN, new modules)
lr_schedule(optimizer, optim, ...)     -> warm-up then cosine or step decay, per step
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convperceiver.config import OptimConfig
from convperceiver.engine.layer_decay import parameter_groups


def build_optimizer(
    model: nn.Module, optim: OptimConfig, *, fused: bool = True
) -> torch.optim.Optimizer:
    """Parameter groups of the CNN and the new modules, each block at its own lr (`layer_decay`).

    Adam and AdamW run fused (one kernel over all tensors, about 4x faster a step on CPU) unless
    ``fused`` is off: fp16 loss scaling cannot clip gradients before a fused step unscales them.
    """
    groups = parameter_groups(
        model,
        lr=optim.lr,
        cnn_lr=optim.cnn_lr,
        layer_decay=optim.layer_decay,
        weight_decay=optim.weight_decay,
        decay_everything=optim.decay_everything,
    )
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=optim.momentum)
    optimizer_class = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(groups, fused=fused)


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


def lr_schedule(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, *, total_steps: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """`lr_factor` as a scheduler stepped once per optimizer step over `total_steps`."""
    total_steps = max(1, total_steps)
    steps_per_epoch = max(1, math.ceil(total_steps / max(1, epochs)))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step, optim=optim, steps_per_epoch=steps_per_epoch, total_steps=total_steps
        ),
    )
