"""Where a trained model looks in a clip: cross-attention maps or Grad-CAM, drawn on its frames.

video -> middle clip (T, crop, crop, 3) uint8 -> normalised (3, T, crop, crop) on the model's
      device -> map on the token grid (T', H', W')
      -> heat (T, crop, crop) -> overlaid frames -> <video>_explain.gif and <video>_explain.png

Hybrids with cross-attention show what the latents read: the first cross block's attention
weights over the space-time tokens, averaged over heads and latents. The baseline and the
self-attention-only variant have no latents, so they show Grad-CAM on the last CNN block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from convperceiver.config import Config
from convperceiver.data.eval_clips import eval_clip_spec, middle_clip
from convperceiver.data.transforms import normalize_clips
from convperceiver.errors import ExplainError
from convperceiver.explain.overlays import contact_sheet, heat, overlay, write_gif
from convperceiver.models import ConvPerceiver, FreezableClassifier

log = logging.getLogger(__name__)

TOP_K = 5
CROSS_ATTENTION = "cross-attention"
GRAD_CAM = "grad-cam"


@dataclass
class ExplainResult:
    gif: Path
    sheet: Path  # the PNG contact sheet
    method: str  # cross-attention | grad-cam
    top: list[tuple[str, float]]  # the clip's top-5 classes and their softmax probabilities
    attention: Tensor  # (T', H', W') float32: the map on the token grid, before upsampling
    class_name: str = ""  # the class Grad-CAM explains; "" for cross-attention
    latents: list[int] = field(default_factory=list)  # latents drawn one by one, most peaked first

    @property
    def paths(self) -> list[Path]:
        return [self.gif, self.sheet]


def has_cross_attention(model: FreezableClassifier) -> bool:
    return isinstance(model, ConvPerceiver) and not model.self_only


def cross_attention_weights(model: ConvPerceiver, clip: Tensor) -> Tensor:
    """The first cross block's attention for one clip (3, T, H, W): (heads, N, T', H', W').

    For each head and latent the weights over the M = T' H' W' tokens sum to 1 (a softmax).
    The first block reads the learned latents themselves, so no other block needs running.
    """
    if not has_cross_attention(model):
        raise ValueError("the model has no cross-attention: use grad_cam instead")
    with torch.no_grad():
        features = model.backbone(clip[None])  # (1, C, T', H', W')
        tokens = model.tokens(features)  # (1, M, C + P)
        weights = model.cross_blocks[0].attention_weights(model.latents[None], tokens)
    frames, height, width = features.shape[2:]
    return rearrange(weights[0], "k n (t y x) -> k n t y x", t=frames, y=height, x=width)


def cross_attention_map(model: ConvPerceiver, clip: Tensor) -> Tensor:
    """(T', H', W'): the first cross block's attention, mean over heads and latents; sums to 1."""
    return cross_attention_weights(model, clip).mean(dim=(0, 1))


def most_peaked_latents(weights: Tensor, count: int) -> list[int]:
    """The `count` latents whose head-averaged attention has the lowest entropy, lowest first.

    Low entropy means a latent reads few tokens: the latents worth drawing one by one.
    `weights` is (heads, N, T', H', W') as `cross_attention_weights` returns it.
    """
    per_latent = weights.mean(dim=0).flatten(1)  # (N, M)
    entropy = -(per_latent * per_latent.clamp_min(1e-12).log()).sum(dim=1)
    return entropy.argsort()[:count].tolist()


def grad_cam(model: FreezableClassifier, clip: Tensor, class_index: int) -> Tensor:
    """Grad-CAM of one clip (3, T, H, W) for a class, on the last CNN block: (T', H', W'), >= 0.

    Each channel of the block's output is weighted by the class logit's gradient averaged over
    the grid; the map is the ReLU of the weighted sum (Selvaraju et al., 2017). The model
    should be in eval mode, or BatchNorm statistics move.
    """
    captured: list[Tensor] = []
    hook = model.backbone.register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        with torch.enable_grad():
            # A clip that needs a gradient makes the features need one, even in a frozen CNN.
            logits = model(clip[None].detach().requires_grad_(True))  # (1, K)
            (gradients,) = torch.autograd.grad(logits[0, class_index], captured[0])
    finally:
        hook.remove()
    features = captured[0].detach()[0]  # (C, T', H', W')
    channel_weights = gradients[0].mean(dim=(1, 2, 3))  # (C,)
    return F.relu(torch.einsum("c,cthw->thw", channel_weights, features))


def _check_request(class_names: list[str], class_name: str | None, latents: int) -> None:
    if class_name is not None and class_name not in class_names:
        raise ExplainError(
            f"unknown class {class_name!r}; the model's classes: {', '.join(class_names)}"
        )
    if latents < 0:
        raise ExplainError(f"latents={latents} must be >= 0")


def _frame_ms(times: list[float]) -> int:
    """Milliseconds per GIF frame, so the clip plays at its real speed."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 125
    return max(20, round(1000 * (times[-1] - times[0]) / (len(times) - 1)))


def _top_classes(
    model: FreezableClassifier, clip: Tensor, class_names: list[str]
) -> list[tuple[str, float]]:
    with torch.no_grad():
        probabilities = model(clip[None]).softmax(dim=-1)[0]  # (K,)
    top = probabilities.topk(min(TOP_K, len(class_names)))
    indices, values = top.indices.tolist(), top.values.tolist()
    return [(class_names[i], p) for i, p in zip(indices, values, strict=True)]


def _write(
    rows: list[tuple[str, np.ndarray]],
    times: list[float],
    *,
    out: Path,
    video: Path,
    described: str,
    top: list[tuple[str, float]],
) -> tuple[Path, Path]:
    """The GIF (every row's panel side by side) and the contact sheet, named after the video."""
    out.mkdir(parents=True, exist_ok=True)
    gif, sheet = out / f"{video.stem}_explain.gif", out / f"{video.stem}_explain.png"
    write_gif([panel for _, panel in rows], gif, frame_ms=_frame_ms(times))
    contact_sheet(
        rows,
        sheet,
        times=times,
        title=f"{video.name}\n{described}",
        lines=["top-5 (this clip)"] + [f"{p:6.1%}  {name}" for name, p in top],
    )
    return gif, sheet


def explain_video(
    model: FreezableClassifier,
    config: Config,
    class_names: list[str],
    video: str | Path,
    *,
    out: Path,
    class_name: str | None = None,
    latents: int = 0,
) -> ExplainResult:
    """Explain the model's view of the clip in the middle of `video`; write a GIF and a PNG.

    Runs on the model's device, in eval mode (it sets it).

    Args:
        config: the checkpoint's config; its eval settings pick and crop the clip.
        out: the folder for `<video stem>_explain.gif` and `<video stem>_explain.png`.
        class_name: the class Grad-CAM explains; default the predicted one. Cross-attention
            maps do not depend on a class, so hybrids with cross-attention ignore it.
        latents: also draw this many latents one by one, the most peaked first (hybrids
            with cross-attention only).
    """
    _check_request(class_names, class_name, latents)
    model.eval()
    pixels, times = middle_clip(video, eval_clip_spec(config.data, config.eval))
    frames = pixels.numpy()  # (T, crop, crop, 3) uint8: exactly what the model is given
    device = next(model.parameters()).device
    clip = normalize_clips(pixels[None].to(device), config.data.mean, config.data.std)[0]
    top = _top_classes(model, clip, class_names)
    size = {"frames": frames.shape[0], "height": frames.shape[1], "width": frames.shape[2]}
    rows = [("clip", frames)]
    chosen: list[int] = []
    if has_cross_attention(model):
        if class_name is not None:
            log.warning(
                "class %r ignored: cross-attention maps do not depend on a class", class_name
            )
        weights = cross_attention_weights(model, clip).cpu()  # (heads, N, T', H', W')
        grid_map = weights.mean(dim=(0, 1))
        method, target = CROSS_ATTENTION, ""
        described = "attention of the first cross block, mean over heads and latents"
        rows.append(("attention (mean)", overlay(frames, heat(grid_map, **size))))
        chosen = most_peaked_latents(weights, min(latents, weights.shape[1]))
        for index in chosen:
            latent_map = weights[:, index].mean(dim=0)
            rows.append((f"latent {index}", overlay(frames, heat(latent_map, **size))))
    else:
        if latents:
            log.warning("latents=%d ignored: the model has no cross-attention", latents)
        method, target = GRAD_CAM, class_name or top[0][0]
        described = f"Grad-CAM on the last CNN block for {target!r}"
        grid_map = grad_cam(model, clip, class_names.index(target)).cpu()
        rows.append((f"Grad-CAM: {target}", overlay(frames, heat(grid_map, **size))))
    gif, sheet = _write(rows, times, out=out, video=Path(video), described=described, top=top)
    return ExplainResult(
        gif=gif,
        sheet=sheet,
        method=method,
        top=top,
        attention=grid_map.float(),
        class_name=target,
        latents=chosen,
    )
