"""The picture users look at first to see whether pretraining works: input, masked, rebuilt.

    plot_reconstructions(clips, masked, rebuilt, path, mean=, std=)

All three are normalised float clips (B, 3, T, H, W), as the model sees them; the figure shows
each clip's frames in three rows (original, what the encoder saw, the reconstruction), a few
frames spread over the clip, back in display pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor

ROWS = ("original", "masked", "reconstructed")


def to_pixels(clips: Tensor, *, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Normalised (B, 3, T, H, W) -> uint8 (B, T, H, W, 3), the normalisation undone."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1)
    pixels = (clips.detach().float().cpu() * std_t + mean_t) * 255
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1)


def plot_reconstructions(
    clips: Tensor,
    masked: Tensor,
    rebuilt: Tensor,
    path: Path,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    frames: int = 4,
    title: str = "",
) -> Path:
    """Write a PNG grid: for each clip, its three rows over `frames` evenly spaced frames."""
    rows = [to_pixels(x, mean=mean, std=std) for x in (clips, masked, rebuilt)]
    count, length = rows[0].shape[:2]
    shown = sorted({round(i * (length - 1) / max(1, frames - 1)) for i in range(frames)})
    figure, axes = plt.subplots(
        3 * count,
        len(shown),
        figsize=(1.3 * len(shown), 1.3 * 3 * count),
        squeeze=False,
    )
    for clip in range(count):
        for kind, (name, pixels) in enumerate(zip(ROWS, rows, strict=True)):
            for column, frame in enumerate(shown):
                axis = axes[3 * clip + kind, column]
                axis.imshow(pixels[clip, frame].numpy())
                axis.set_xticks([])
                axis.set_yticks([])
                if column == 0:
                    axis.set_ylabel(name, fontsize=7)
                if clip == 0 and kind == 0:
                    axis.set_title(f"frame {frame}", fontsize=7)
    if title:
        figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
