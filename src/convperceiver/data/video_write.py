"""Writing uint8 RGB frames to a video file through PyAV (the synthetic sets, the cache)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from convperceiver.data.video_container import reason
from convperceiver.errors import VideoError


def _pixel_format(codec: str, width: int, height: int) -> str:
    supported = [f.name for f in av.Codec(codec, "w").video_formats or []]
    if (width % 2 or height % 2) and "yuv444p" in supported:
        return "yuv444p"  # most encoders refuse 4:2:0 at odd sizes; mpeg4 pads them itself
    return "yuv420p" if "yuv420p" in supported or not supported else supported[0]


def write_video(
    path: str | Path,
    frames: np.ndarray | torch.Tensor,
    fps: float,
    codec: str = "mpeg4",
    *,
    pixel_format: str | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Write uint8 RGB frames (T, H, W, 3) to a video file; the container follows the suffix.

    Any size works: odd sizes are stored 4:4:4 by encoders that support it (mpeg4 pads 4:2:0
    internally). `pixel_format` overrides the choice, e.g. "gray" with codec "ffv1". `options`
    go to the muxer, e.g. {"movflags": "faststart"} for an MP4 with its index first, as on the web.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    try:
        with av.open(str(path), "w", options=options or {}) as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = width, height
            stream.pix_fmt = pixel_format or _pixel_format(codec, width, height)
            stream.bit_rate = 1_000_000  # the default 200 kb/s smears small moving shapes
            container.start_encoding()  # writes the header even when there are no frames
            for array in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
    except av.FFmpegError as error:
        raise VideoError(f"{path}: cannot write ({reason(error)})") from error
