"""What a config builds: parameters per part, token grid, shapes and forward FLOPs per clip.

Counts do not depend on the weights' values, so the summary never downloads the Kinetics
weights (a weights file named in the config is still read, which checks that it fits).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from convperceiver.config import Config
from convperceiver.models import build_model
from convperceiver.models.classifier import ConvPerceiver
from convperceiver.models.runtime import count_parameters
from convperceiver.profiling.flops import forward_flops


def summarize(config: Config, *, num_classes: int) -> dict[str, Any]:
    """The numbers `convperceiver summary` prints, for one clip of the training size."""
    weights = "none" if config.model.weights == "kinetics400" else config.model.weights
    model_config = dataclasses.replace(config.model, weights=weights)
    model = build_model(model_config, num_classes=num_classes)
    data = config.data
    clip = torch.zeros(1, 3, data.num_frames, data.crop_size, data.crop_size)
    cnn_params = count_parameters(model.backbone)
    total_params = count_parameters(model)
    with torch.no_grad():
        features = model.backbone(clip)
    tokens = int(features.shape[2:].numel())
    summary: dict[str, Any] = {
        "arch": config.model.arch,
        "cnn_blocks": config.model.cnn_blocks if config.model.arch == "hybrid" else 8,
        "cross_blocks": config.model.cross_blocks if config.model.arch == "hybrid" else 0,
        "self_blocks": config.model.self_blocks if config.model.arch == "hybrid" else 0,
        "num_classes": num_classes,
        "input_shape": list(clip.shape),
        "feature_shape": list(features.shape),
        "tokens": tokens,
        "cnn_params": cnn_params,
        "attention_params": total_params - cnn_params,
        "total_params": total_params,
        "trainable_params": count_parameters(model, trainable=True),
        "frozen_params": count_parameters(model, trainable=False),
    }
    if isinstance(model, ConvPerceiver):
        with torch.no_grad():
            latents = model.forward_features(clip)
        summary["token_dim"] = model.tokens(features).shape[-1]
        summary["latent_shape"] = list(latents.shape)
    summary["output_shape"] = [1, num_classes]
    flops, cnn_flops = forward_flops(model, clip)
    summary["gflops"] = flops / 1e9
    summary["cnn_gflops"] = cnn_flops / 1e9
    summary["attention_gflops"] = (flops - cnn_flops) / 1e9
    summary["gmacs"] = flops / 2e9
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable table."""

    def millions(n: int) -> str:
        return f"{n / 1e6:.2f}M ({n:,})"

    if summary["arch"] == "baseline":
        variant = "baseline R(2+1)D-18 (global average pool + linear head)"
    elif summary["cross_blocks"] == 0:
        variant = f"{summary['cnn_blocks']} CNN blocks + {summary['self_blocks']} Self"
    else:
        variant = f"{summary['cnn_blocks']} CNN blocks + {summary['cross_blocks']} Cross" + (
            f" + {summary['cross_blocks'] * summary['self_blocks']} Self"
            if summary["self_blocks"]
            else ""
        )
    rows = [
        ("variant", variant),
        ("classes", str(summary["num_classes"])),
        ("input clip", "x".join(map(str, summary["input_shape"]))),
        ("CNN features", "x".join(map(str, summary["feature_shape"]))),
        ("tokens M", str(summary["tokens"])),
    ]
    if "latent_shape" in summary:
        rows += [
            ("token dim", str(summary["token_dim"])),
            ("latents (CLS first)", "x".join(map(str, summary["latent_shape"]))),
        ]
    rows += [
        ("logits", "x".join(map(str, summary["output_shape"]))),
        ("CNN params", millions(summary["cnn_params"])),
        ("attention params", millions(summary["attention_params"])),
        ("total params", millions(summary["total_params"])),
        (
            "trainable / frozen",
            f"{millions(summary['trainable_params'])} / {millions(summary['frozen_params'])}",
        ),
        (
            "forward GFLOPs",
            f"{summary['gflops']:.2f} (CNN {summary['cnn_gflops']:.2f}, "
            f"attention {summary['attention_gflops']:.2f}; "
            f"{summary['gmacs']:.2f} GMACs)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
