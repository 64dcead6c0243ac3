"""Heat maps drawn over a clip's frames, written as an animated GIF and a PNG contact sheet.

map on the token grid (T', H', W') -> heat (T, H, W) in [0, 1] -> frames (T, H, W, 3) uint8
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

COLORMAP = "jet"
GIF_MIN_HEIGHT = 224  # pixels: a 112-pixel crop is too small to read on screen
MAX_COLUMNS = 16  # frames per contact-sheet row; longer clips show evenly spaced ones
PANEL_GAP = 2  # pixels between the panels of a GIF frame
TEXT_WIDTH = 2.6  # inches left of a contact sheet's frames, for the top-5 classes
MIN_WIDTH = 8.0  # inches: room for the title of a short clip
MAX_ALPHA = 0.6  # opacity of the hottest colour; cold pixels show the frame unchanged


def heat(grid_map: Tensor, *, frames: int, height: int, width: int) -> Tensor:
    """(T', H', W') -> (T, H, W) in [0, 1], upsampled trilinearly and scaled over the whole clip.

    One scale for the whole clip keeps frames comparable: a frame the model ignores stays cold.
    Each grid cell is centred on the frames and pixels it covers (`align_corners=False`).
    """
    grid = grid_map.detach().float()[None, None]  # (1, 1, T', H', W')
    upsampled = F.interpolate(
        grid, size=(frames, height, width), mode="trilinear", align_corners=False
    )[0, 0]
    low, high = upsampled.min(), upsampled.max()
    if high - low <= torch.finfo(upsampled.dtype).eps * max(high.abs().item(), 1.0):
        return torch.zeros_like(upsampled)  # flat up to rounding: it singles out nothing
    return (upsampled - low) / (high - low)


def overlay(frames: np.ndarray, heat_map: Tensor) -> np.ndarray:
    """uint8 frames (T, H, W, 3) blended with the colour-mapped heat (T, H, W) in [0, 1].

    Opacity grows with the heat, so what the model ignores stays visible as it is.
    """
    heat_values = heat_map.numpy()
    colours = matplotlib.colormaps[COLORMAP](heat_values)[..., :3]  # (T, H, W, 3) in [0, 1]
    alpha = MAX_ALPHA * heat_values[..., None]  # (T, H, W, 1)
    blended = (1 - alpha) * frames / 255.0 + alpha * colours
    return (blended * 255).round().clip(0, 255).astype(np.uint8)


def write_gif(panels: Sequence[np.ndarray], path: Path, *, frame_ms: int) -> None:
    """Panels of uint8 frames (T, H, W, 3) side by side, enlarged, looping forever."""
    gap = np.full((*panels[0].shape[:2], PANEL_GAP, 3), 255, dtype=np.uint8)
    pieces = [piece for panel in panels for piece in (gap, panel)][1:]
    frames = np.concatenate(pieces, axis=2)  # (T, H, W_total, 3)
    scale = max(1, math.ceil(GIF_MIN_HEIGHT / frames.shape[1]))
    size = (frames.shape[2] * scale, frames.shape[1] * scale)
    images = [Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)


def contact_sheet(
    rows: Sequence[tuple[str, np.ndarray]],
    path: Path,
    *,
    times: Sequence[float],
    title: str,
    lines: Sequence[str],
) -> None:
    """A PNG grid: one row per (label, uint8 frames (T, H, W, 3)), one column per frame.

    `times` (seconds) label the columns; `title` (up to two lines) heads the sheet and `lines`
    (e.g. the top-5 classes) fill a text panel on the left.
    """
    count = len(times)
    columns = np.unique(np.linspace(0, count - 1, min(count, MAX_COLUMNS)).round().astype(int))
    figure, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(max(MIN_WIDTH, TEXT_WIDTH + 1.3 * len(columns)), 1.1 + 1.4 * len(rows)),
        squeeze=False,
    )
    for row, (label, frames) in enumerate(rows):
        for column, index in enumerate(columns):
            axis = axes[row, column]
            axis.imshow(frames[index])
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"{times[index]:.2f} s", fontsize=8)
        axes[row, 0].set_ylabel(label, fontsize=8)
    height = figure.get_figheight()
    top = 1 - 1.0 / height  # room for two title lines and the column times
    figure.subplots_adjust(
        left=TEXT_WIDTH / figure.get_figwidth(),
        right=0.995,
        top=top,
        bottom=0.1 / height,
        wspace=0.04,
        hspace=0.1,
    )
    figure.text(0.005, 1 - 0.1 / height, title, fontsize=11, weight="bold", va="top", wrap=True)
    figure.text(0.005, top, "\n".join(lines), fontsize=9, family="monospace", va="top")
    figure.savefig(path, dpi=100)
    plt.close(figure)
