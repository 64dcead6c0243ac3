"""GPU decoding through TorchCodec's CUDA decoder (NVDEC), for `data.decoder: torchcodec-cuda`.

    cuda_decoding_problem()                -> None, or why GPU decoding cannot run here
    decode_clip_cuda(path, times, size=)   -> (T, H, W, 3) uint8 on the current CUDA device

Same times and frame contract as `video.decode_clip`, but the frames stay on the GPU and are
resized there (bilinear with antialiasing). TorchCodec is optional (the `gpu-decode` extra; its
CUDA build comes from the PyTorch wheel index and needs a system FFmpeg), so it is imported
only here and only when asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as F

from convperceiver.errors import VideoError

# TorchCodec refuses a time at or past the stream's end; this much before it shows the last frame.
END_MARGIN_S = 1e-3


@functools.cache
def cuda_decoding_problem() -> str | None:
    """Why TorchCodec's CUDA decoder cannot run in this process; None when it can."""
    try:
        import torchcodec.decoders  # noqa: F401
    except (ImportError, OSError, RuntimeError) as error:
        # RuntimeError/OSError: torchcodec imports but finds no FFmpeg libraries it can load.
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"torchcodec does not import ({reason}); pip install 'convperceiver[gpu-decode]'"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def decode_clip_cuda(
    path: str | Path, times: Sequence[float], *, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """The frames on screen at `times` (seconds from the first frame) as CUDA uint8 (T, H, W, 3).

    Times are clamped into the stream: TorchCodec refuses those before its first frame, which
    real files often put at 0.03-0.07 s, and those past its end.
    """
    from torchcodec.decoders import VideoDecoder

    if len(times) == 0:
        raise ValueError("decode_clip_cuda needs at least one time")
    try:
        # Approximate seeking trusts the container's index instead of scanning the whole file.
        decoder = VideoDecoder(str(path), device="cuda", seek_mode="approximate")
        meta = decoder.metadata
        begin = meta.begin_stream_seconds or 0.0
        end = meta.end_stream_seconds or begin + (meta.duration_seconds or 0.0)
        last = max(begin, end - END_MARGIN_S)
        seconds = [min(max(begin + float(t), begin), last) for t in times]
        frames = decoder.get_frames_played_at(seconds=seconds).data  # (T, 3, H, W) uint8
    except (RuntimeError, ValueError) as error:
        raise VideoError(f"{path}: cannot decode on the GPU ({error})") from error
    if size is not None and tuple(frames.shape[-2:]) != tuple(size):
        frames = F.resize(frames, list(size), antialias=True)
    return frames.permute(0, 2, 3, 1).contiguous()
