"""FLOP counting for one forward pass or one training step; a multiply-add counts as 2.

torch's counter covers the CUDA kernels of SDPA but not the fused CPU one, so its formula
is added here.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

aten = torch.ops.aten


def _sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


SDPA_CPU_FLOPS = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


def forward_flops(model: nn.Module, clip: torch.Tensor) -> tuple[int, int]:
    """(total, CNN backbone) FLOPs of one forward pass."""
    model = model.eval().requires_grad_(False)
    with FlopCounterMode(display=False, custom_mapping=SDPA_CPU_FLOPS) as counter:
        model(clip)
    counts = counter.get_flop_counts()
    backbone = next((c for name, c in counts.items() if name.endswith(".backbone")), {})
    return counter.get_total_flops(), sum(backbone.values())


def training_flops(model: nn.Module, clip_shape: tuple[int, ...]) -> int:
    """FLOPs of one training step's forward and backward, counted from shapes on the meta device.

    Frozen parameters get no weight gradient, so this is not simply 3x the forward.
    """
    model = copy.deepcopy(model).to("meta").train()
    clip = torch.zeros(clip_shape, device="meta")
    labels = torch.zeros(clip_shape[0], dtype=torch.long, device="meta")
    with FlopCounterMode(display=False, custom_mapping=SDPA_CPU_FLOPS) as counter:
        F.cross_entropy(model(clip), labels).backward()
    return counter.get_total_flops()
