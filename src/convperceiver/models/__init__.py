"""Model construction from the `model` config section."""

from __future__ import annotations

import torch
from torch import nn

from convperceiver.config import ModelConfig
from convperceiver.models.backbone import MAX_BLOCKS, TruncatedR2Plus1D, build_backbone
from convperceiver.models.classifier import ConvPerceiver, FreezableClassifier, R2Plus1DClassifier

__all__ = [
    "ConvPerceiver",
    "FreezableClassifier",
    "R2Plus1DClassifier",
    "TruncatedR2Plus1D",
    "build_model",
    "cast_for_autocast",
    "memory_format",
    "set_memory_format",
]


def build_model(config: ModelConfig, *, num_classes: int) -> FreezableClassifier:
    """The hybrid or the baseline, with pretrained weights loaded and frozen parts frozen."""
    if config.arch == "baseline":
        backbone = build_backbone(cnn_blocks=MAX_BLOCKS, weights=config.weights)
        model: FreezableClassifier = R2Plus1DClassifier(
            backbone=backbone, num_classes=num_classes, dropout=config.dropout
        )
    elif config.arch == "hybrid":
        backbone = build_backbone(cnn_blocks=config.cnn_blocks, weights=config.weights)
        model = ConvPerceiver(
            backbone=backbone,
            num_classes=num_classes,
            cross_blocks=config.cross_blocks,
            self_blocks=config.self_blocks,
            num_latents=config.num_latents,
            latent_dim=config.latent_dim,
            cross_heads=config.cross_heads,
            cross_head_dim=config.cross_head_dim,
            self_heads=config.self_heads,
            self_head_dim=config.self_head_dim,
            ff_mult=config.ff_mult,
            fourier_bands=config.fourier_bands,
            max_freq=config.max_freq,
            dropout=config.dropout,
        )
        if config.freeze_cross_attention:
            model.freeze_cross_attention()
    else:
        raise ValueError(f"unknown arch {config.arch!r}")
    model.freeze_cnn_blocks(config.freeze_cnn_blocks)
    return model


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
