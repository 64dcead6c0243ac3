"""The networks, and `build_model`: the classifier that the `model` config section describes.

clip -> backbone.py (the first k blocks of R(2+1)D-18) -> attention.py (Perceiver blocks) ->
classifier.py (hybrid, or the baseline's pool and head). masking.py and pretraining.py hold the
masked video model; init_from.py starts a model from a checkpoint.
"""

from __future__ import annotations

from convperceiver.config import ModelConfig
from convperceiver.models.backbone import MAX_BLOCKS, TruncatedR2Plus1D, build_backbone
from convperceiver.models.classifier import ConvPerceiver, FreezableClassifier, R2Plus1DClassifier

__all__ = [
    "ConvPerceiver",
    "FreezableClassifier",
    "R2Plus1DClassifier",
    "TruncatedR2Plus1D",
    "build_model",
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
