"""How a built model runs: its memory format, the autocast dtype and weights cast for it,
parameter counts."""

from __future__ import annotations

import torch
from torch import nn

from convperceiver.errors import ConfigError
from convperceiver.models.classifier import FreezableClassifier

AMP_CHOICES = ("auto", "bf16", "off")  # --amp: bf16 where the device has it natively | bf16 | fp32


def count_parameters(module: nn.Module, *, trainable: bool | None = None) -> int:
    """Parameters of `module`; only trainable (or only frozen) ones when `trainable` is set."""
    return sum(
        p.numel() for p in module.parameters() if trainable is None or p.requires_grad == trainable
    )


def memory_format(*, channels_last: bool) -> torch.memory_format:
    return torch.channels_last_3d if channels_last else torch.contiguous_format


def set_memory_format(model: FreezableClassifier, *, channels_last: bool) -> FreezableClassifier:
    """Lay the CNN's weights out channels_last_3d (or back to channels-first), in place.

    A convolution that oneDNN (CPU) or cuDNN (CUDA) runs, and whose weight is channels_last_3d,
    runs in that format whatever its input's, and its output keeps it: the whole CNN follows,
    and its convolutions run faster (see benchmarks/RESULTS.md). Values are unchanged.
    """
    model.backbone.to(memory_format=memory_format(channels_last=channels_last))
    return model


def cast_for_autocast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast, once and in place, the weights that autocast to `dtype` casts at every call.

    Autocast rounds each Linear and convolution weight (and bias) to `dtype` in every forward
    (its cache stays off under inference_mode), re-reading the fp32 weights each time. Cast
    once, autocast finds them in `dtype` and the outputs are bit for bit the same. The model
    then runs only under autocast, and only for inference.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            module.to(dtype)
    return model


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 arithmetic: AVX512-BF16 or AMX on CPU (oneDNN's check), Ampere+ on CUDA."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def training_precision(precision: str, accelerator: str) -> str:
    """`trainer.precision` for Lightning: auto is bf16-mixed where the training device has
    native bf16 (AVX512-BF16 or AMX CPUs, Ampere+ GPUs), else 32; other values pass through."""
    if precision != "auto":
        return precision
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if bf16_supported(torch.device("cuda" if on_gpu else "cpu")) else "32"


def inference_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of inference for amp: auto (bf16 where native) | bf16 | off (None)."""
    if amp not in AMP_CHOICES:
        raise ConfigError(f"amp {amp!r} is not one of: {', '.join(AMP_CHOICES)}")
    if amp == "bf16" or (amp == "auto" and bf16_supported(device)):
        return torch.bfloat16
    return None
