"""A trained model as an ONNX or TorchScript file, checked against PyTorch on a real clip.

model -> file with a dynamic batch axis: clip (B, 3, T, crop, crop) float32 -> logits (B, K)

T and the crop are fixed at export: the Fourier position features are computed for one token
grid. The check runs the file on a batch of 2 clips (a decoded or rendered clip and its mirror)
and compares its logits with the model's; a file that disagrees by more than `TOLERANCE` is
deleted and the export fails.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from convperceiver.config import Config
from convperceiver.data.eval_clips import EvalClipSpec, eval_clip_spec, middle_clip, synthetic_clip
from convperceiver.data.transforms import normalize_clips
from convperceiver.engine.train import model_from_checkpoint
from convperceiver.errors import ExportError
from convperceiver.models import FreezableClassifier

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
TOLERANCE = 1e-3  # max abs difference of logits
# torch.onnx's default in torch 2.14, where SDPA becomes MatMul + Softmax. Opset 23 would map it
# to ONNX's fused Attention operator, but runtimes without that (older onnxruntime, TensorRT,
# mobile) could not load the file.
OPSET = 20
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float  # logits of the file vs PyTorch, batch of 2 clips


def _check_onnx_packages() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}: pip install 'convperceiver[export]'"
        )


def _write_onnx(model: FreezableClassifier, clips: Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        model,
        (clips,),
        path,
        input_names=["clip"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        opset_version=OPSET,
        external_data=False,  # one self-contained file; every variant is far below 2 GB
        verbose=False,
    )


def _write_torchscript(model: FreezableClassifier, clips: Tensor, path: Path) -> None:
    # torch 2.14 deprecates TorchScript, but C++ (libtorch) deployments still load it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit", category=FutureWarning)
        # The parity check below compares outputs, so the tracer's own re-run would be redundant.
        traced = torch.jit.trace(model, (clips,), check_trace=False)
        torch.jit.save(traced, str(path))


def run_exported(path: Path, clips: Tensor, *, fmt: str) -> Tensor:
    """Logits (B, K) of an exported file for clips (B, 3, T, crop, crop), on the CPU."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (logits,) = session.run(None, {session.get_inputs()[0].name: clips.numpy()})
        return torch.from_numpy(logits)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit", category=FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(clips)


def parity_clips(
    spec: EvalClipSpec,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    video: str | Path | None = None,
) -> Tensor:
    """(2, 3, T, crop, crop) float32: the middle clip of `video` (else a rendered one) and its
    mirror, normalised as the model sees them.

    Two different clips make a batch that would show any mixing between batch items.
    """
    clip = middle_clip(video, spec)[0] if video is not None else synthetic_clip(spec)
    pixels = torch.stack([clip, clip.flip(2)])  # (2, T, crop, crop, 3) uint8
    # The exported file takes channels-first clips, as `run_exported` hands them over.
    return normalize_clips(pixels, mean, std).contiguous()


def export_model(
    model: FreezableClassifier,
    config: Config,
    *,
    fmt: str,
    out: Path,
    video: str | Path | None = None,
) -> ExportResult:
    """Write `model` to `out` as ONNX or TorchScript and check its logits against PyTorch.

    The file takes clips of the config's evaluation length and crop (`eval.num_frames`, or
    `data.num_frames`, by `data.crop_size`) and any batch size. `video` gives the parity
    check a real clip; without it the check runs on a rendered synthetic clip.
    Raises `ExportError` when the file's logits differ by more than `TOLERANCE`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not one of: {', '.join(FORMATS)}")
    spec = eval_clip_spec(config.data, config.eval)
    if spec.num_frames < 1:
        raise ExportError(f"clips of {spec.num_frames} frames: the length must be >= 1")
    if fmt == "onnx":
        _check_onnx_packages()
    model = model.eval().cpu()
    clips = parity_clips(spec, mean=config.data.mean, std=config.data.std, video=video)
    # Run PyTorch first: it also fills the model's cache of position features with real tensors,
    # which the ONNX exporter would otherwise see being assigned while it traces.
    with torch.no_grad():
        expected = model(clips)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write = _write_onnx if fmt == "onnx" else _write_torchscript
    write(model, clips, out)
    max_abs_diff = (run_exported(out, clips, fmt=fmt) - expected).abs().max().item()
    if not max_abs_diff <= TOLERANCE:  # also catches NaN
        out.unlink()
        raise ExportError(
            f"{fmt} parity check failed: logits differ from PyTorch by up to {max_abs_diff:.3g} "
            f"(tolerance {TOLERANCE:g}); {out} was deleted"
        )
    return ExportResult(path=out, max_abs_diff=max_abs_diff)


def export_checkpoint(
    checkpoint: str | Path,
    *,
    fmt: str,
    out: str | Path | None = None,
    frames: int | None = None,
    video: str | Path | None = None,
    overrides: list[str] | None = None,
    config_path: str | Path | None = None,
) -> ExportResult:
    """`export_model` on a trained checkpoint: the file takes clips of `frames` frames (default:
    the checkpoint's evaluation clip) and lands in `out` (default: beside the checkpoint).

    `config_path` and `overrides` change the checkpoint's config as for `predict`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not one of: {', '.join(FORMATS)}")
    overrides = [*(overrides or []), *([] if frames is None else [f"eval.num_frames={frames}"])]
    model, config, _ = model_from_checkpoint(checkpoint, overrides, config_path)
    out = Path(out) if out is not None else Path(checkpoint).with_suffix(SUFFIXES[fmt])
    return export_model(model, config, fmt=fmt, out=out, video=video)
