"""The first k residual blocks of torchvision's R(2+1)D-18, and its pretrained weights.

clip (B, 3, T, H, W) -> features (B, C, T', H', W')

Truncation keeps torchvision's module names (`stem`, `layer1.0`, ...), so a state_dict of
the full torchvision model loads into any truncated backbone key for key.
"""

from __future__ import annotations

import logging
import urllib.error
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.video import R2Plus1D_18_Weights, r2plus1d_18

from convperceiver.errors import WeightsError
from convperceiver.safe_load import load_state_dict_file

log = logging.getLogger(__name__)

LAYERS = ("layer1", "layer2", "layer3", "layer4")
BLOCKS_PER_LAYER = 2
MAX_BLOCKS = len(LAYERS) * BLOCKS_PER_LAYER
BLOCK_CHANNELS = (64, 64, 128, 128, 256, 256, 512, 512)
# Each stride-2 layer (layer2..4) halves time, height and width at its first block.
BLOCK_STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)


class TruncatedR2Plus1D(nn.Module):
    """torchvision's stem plus its first `cnn_blocks` BasicBlocks, with no pooling or head."""

    def __init__(self, *, cnn_blocks: int = MAX_BLOCKS) -> None:
        super().__init__()
        if not 1 <= cnn_blocks <= MAX_BLOCKS:
            raise ValueError(f"cnn_blocks={cnn_blocks} must be in 1..{MAX_BLOCKS}")
        full = r2plus1d_18()
        self.cnn_blocks = cnn_blocks
        self.out_channels = BLOCK_CHANNELS[cnn_blocks - 1]
        self.stem = full.stem
        for index, name in enumerate(LAYERS):
            kept = min(max(cnn_blocks - index * BLOCKS_PER_LAYER, 0), BLOCKS_PER_LAYER)
            if kept:
                setattr(self, name, nn.Sequential(*list(getattr(full, name))[:kept]))
        self.layer_names = [name for name in LAYERS if hasattr(self, name)]

    def blocks(self) -> list[nn.Module]:
        """The kept BasicBlocks in order, so callers can freeze the first n."""
        return [block for name in self.layer_names for block in getattr(self, name)]

    def forward(self, clip: Tensor) -> Tensor:
        features = self.stem(clip)
        for name in self.layer_names:
            features = getattr(self, name)(features)
        return features


def output_grid(cnn_blocks: int, frames: int, height: int, width: int) -> tuple[int, int, int]:
    """The (T', H', W') feature grid for a clip size, without running the network."""
    height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1  # stem: spatial stride 2
    for stride in BLOCK_STRIDES[:cnn_blocks]:
        if stride == 2:
            frames, height, width = ((n - 1) // 2 + 1 for n in (frames, height, width))
    return frames, height, width


def kinetics_state_dict() -> dict[str, Tensor]:
    """torchvision's Kinetics-400 weights, from torch hub's cache or the network."""
    weights = R2Plus1D_18_Weights.KINETICS400_V1
    file_name = weights.url.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except (urllib.error.URLError, OSError) as error:
        raise WeightsError(
            f"cannot fetch the Kinetics-400 R(2+1)D-18 weights ({error.__class__.__name__}): "
            f"put {file_name} (from {weights.url}) in {folder}, "
            "or set model.weights to a state_dict file or to none"
        ) from error


def load_backbone_weights(
    backbone: TruncatedR2Plus1D, state: dict[str, Tensor], *, source: str
) -> None:
    """Load a full (or truncated) r2plus1d_18 state_dict, ignoring what truncation dropped."""
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise WeightsError(
            f"{source} is not an r2plus1d_18 state_dict: {len(missing)} keys missing, "
            f"e.g. {missing[0]!r}"
        )
    mismatched = [key for key in own if own[key].shape != state[key].shape]
    if mismatched:
        key = mismatched[0]
        raise WeightsError(
            f"{source} does not fit r2plus1d_18: {key!r} has shape {tuple(state[key].shape)}, "
            f"expected {tuple(own[key].shape)}"
        )
    dropped = sorted(set(state) - set(own))
    if dropped:
        modules = sorted(
            {".".join(key.split(".")[: 2 if key.startswith("layer") else 1]) for key in dropped}
        )
        log.info(
            "%s: ignored %d keys the truncation to %d blocks drops (%s)",
            source,
            len(dropped),
            backbone.cnn_blocks,
            ", ".join(modules),
        )
    backbone.load_state_dict({key: state[key] for key in own})


def build_backbone(*, cnn_blocks: int, weights: str = "none") -> TruncatedR2Plus1D:
    """A truncated backbone with `weights`: kinetics400 | none | a state_dict file path."""
    backbone = TruncatedR2Plus1D(cnn_blocks=cnn_blocks)
    if weights == "kinetics400":
        load_backbone_weights(backbone, kinetics_state_dict(), source="Kinetics-400 weights")
    elif weights != "none":
        load_backbone_weights(
            backbone, load_state_dict_file(weights, what="weights file"), source=weights
        )
    return backbone
