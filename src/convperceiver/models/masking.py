"""Tube masks on the CNN's token grid, and masked ("sparse") convolution for the CNN.

mask (B, T', H', W') bool, True = masked -> pixels (B, 1, T, H, W) -> masked CNN
-> features (B, C, T', H', W'), every visible cell computed from visible pixels only.

A dense convolution spreads visible content into masked cells and, one layer later, back
into visible ones, so the mask "dissipates" through the network (SparK, ConvNeXt V2). As
both do in plain PyTorch, the masked CNN zeroes masked pixels, multiplies every Conv3d and
BatchNorm3d output by the visible mask resized (nearest) to that output's grid, and computes
BatchNorm statistics over visible positions only. Masking before and after each dense
convolution equals a sparse convolution over the visible set, with no sparse-conv library.

`convert_to_masked` swaps the classes of a backbone's Conv3d and BatchNorm3d modules in
place: same objects, same parameter and buffer names, so state_dict keys are unchanged and
load into a plain backbone. With no mask set, the converted modules behave as plain ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def tube_mask(
    batch: int,
    grid: tuple[int, int, int],
    *,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """(B, T', H', W') bool, True = masked: one random spatial mask per sample, for every t.

    Masking whole tubes in time (VideoMAE) keeps a masked cell from being copied from the
    same cell in a neighbouring frame. Exactly round(ratio * H' * W') cells per sample are
    masked, at least one and leaving at least one visible.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio={ratio} must be in (0, 1)")
    frames, height, width = grid
    cells = height * width
    if cells < 2:
        raise ValueError(f"a {height}x{width} token grid cannot hold a masked and a visible cell")
    masked = min(max(round(ratio * cells), 1), cells - 1)
    where = generator.device if generator is not None else None
    scores = torch.rand(batch, cells, generator=generator, device=where)
    chosen = scores.argsort(dim=1)[:, :masked]  # (B, masked): a random subset per sample
    spatial = torch.zeros(batch, cells, dtype=torch.bool, device=scores.device)
    spatial.scatter_(1, chosen, True)
    return repeat(spatial, "b (h w) -> b t h w", t=frames, h=height).to(device)


def upsample_mask(mask: Tensor, size: tuple[int, ...]) -> Tensor:
    """mask (B, T', H', W') -> (B, 1, T, H, W): each cell covers a (T/T', H/H', W/W') tube."""
    grid = tuple(mask.shape[1:])
    if len(grid) != 3 or len(size) != 3:
        raise ValueError(f"mask {tuple(mask.shape)} is not (B, T', H', W') or size {size} not 3-D")
    if any(pixels % cells for cells, pixels in zip(grid, size, strict=True)):
        raise ValueError(
            f"clip size {tuple(size)} is not a whole multiple of the mask grid {grid} "
            "on every axis (frames, height, width)"
        )
    t, h, w = (pixels // cells for cells, pixels in zip(grid, size, strict=True))
    return repeat(mask, "b gt gh gw -> b 1 (gt t) (gh h) (gw w)", t=t, h=h, w=w)


class VisibleMask:
    """The visible cells of the current forward, resized (nearest) once per layer resolution."""

    def __init__(self) -> None:
        self.visible: Tensor | None = None  # (B, T', H', W') bool, True = visible
        self._resized: dict[tuple, Tensor] = {}

    def set(self, visible: Tensor | None) -> None:
        self.visible = visible
        self._resized = {}

    def at(self, like: Tensor) -> Tensor | None:
        """(B, 1, T, H, W) bool on `like`'s grid, or None when no mask is set."""
        if self.visible is None:
            return None
        key = (tuple(like.shape[2:]), like.device)
        if key not in self._resized:
            cells = self.visible[:, None].to(device=like.device, dtype=torch.float32)
            resized = F.interpolate(cells, size=key[0], mode="nearest")
            self._resized[key] = resized.bool()
        return self._resized[key]


class MaskedConv3d(nn.Conv3d):
    """A Conv3d whose output is zero at masked cells, so no later layer reads from them."""

    visible_mask: VisibleMask | None = None

    def forward(self, x: Tensor) -> Tensor:
        out = super().forward(x)
        mask = self.visible_mask.at(out) if self.visible_mask is not None else None
        return out if mask is None else out * mask


class MaskedBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d over visible positions only; masked positions come out as zeros.

    The V visible positions are gathered into a (1, C, V, 1, 1) batch and run through
    BatchNorm3d itself (as SparK does with BatchNorm1d), so the batch statistics, the running
    statistics' update (momentum, unbiased variance) and eval mode are PyTorch's own.
    """

    visible_mask: VisibleMask | None = None

    def forward(self, x: Tensor) -> Tensor:
        mask = self.visible_mask.at(x) if self.visible_mask is not None else None
        if mask is None:
            return super().forward(x)
        keep = mask[:, 0]  # (B, T, H, W)
        cells = rearrange(x, "b c t h w -> b t h w c")
        rows = rearrange(cells[keep], "v c -> 1 c v 1 1")  # one sample of V cells: fast kernels
        normed = rearrange(super().forward(rows), "1 c v 1 1 -> v c")
        out = cells.new_zeros(cells.shape)
        out[keep] = normed.to(out.dtype)
        return rearrange(out, "b t h w c -> b c t h w")


def convert_to_masked(backbone: nn.Module) -> nn.Module:
    """Make every Conv3d and BatchNorm3d of `backbone` masked, in place; returns `backbone`.

    The modules keep their identity (a frozen-module list or a hook still points at them),
    their parameters and their buffers: only their class changes. Converting twice is a no-op.
    """
    shared = getattr(backbone, "visible_mask", None) or VisibleMask()
    for module in backbone.modules():
        if type(module) is nn.Conv3d:
            module.__class__ = MaskedConv3d
        elif type(module) is nn.BatchNorm3d:
            module.__class__ = MaskedBatchNorm3d
        if isinstance(module, (MaskedConv3d, MaskedBatchNorm3d)):
            module.visible_mask = shared
    backbone.visible_mask = shared
    return backbone


def masked_forward(backbone: nn.Module, clip: Tensor, mask: Tensor) -> Tensor:
    """Run a converted backbone on `clip` with the tubes under `mask` removed.

    clip (B, 3, T, H, W) float, mask (B, T', H', W') bool on the backbone's output grid,
    True = masked -> features (B, C, T', H', W'), zero at masked cells; nothing from a masked
    pixel reaches a visible cell, in train and in eval mode.
    """
    shared = getattr(backbone, "visible_mask", None)
    if not isinstance(shared, VisibleMask):
        raise ValueError("the backbone is not masked: call convert_to_masked(backbone) first")
    plain = [
        name
        for name, module in backbone.named_modules()
        if isinstance(module, _BatchNorm) and not isinstance(module, MaskedBatchNorm3d)
    ]
    if plain:
        # e.g. a SyncBatchNorm conversion after convert_to_masked: its statistics would read
        # masked cells, and its outputs there would leak into visible ones.
        raise ValueError(f"the backbone's BatchNorm {plain[0]!r} is not a MaskedBatchNorm3d")
    clip = clip.masked_fill(upsample_mask(mask, tuple(clip.shape[2:])), 0.0)
    shared.set(~mask)
    try:
        features = backbone(clip)
    finally:
        shared.set(None)
    if tuple(features.shape[2:]) != tuple(mask.shape[1:]):
        raise ValueError(
            f"mask grid {tuple(mask.shape[1:])} is not the backbone's output grid "
            f"{tuple(features.shape[2:])}"
        )
    return features
