"""Reading video files through PyAV: probe them, decode the frames a clip needs.

Opening a stream and walking its frames is `video_container`'s; writing is `video_write`'s.
Times are seconds from the start of the video stream (0 = its first frame); frames come out
as uint8 RGB tensors (T, H, W, 3).

    probe_video(path)                 -> VideoInfo (container metadata, checked against the
                                         last packets, which catches a header that overstates)
    decode_clip(path, times, size=, decoder=) -> (T, H, W, 3): seek, decode forward, convert
                                         kept frames (or TorchCodec on the GPU, `video_cuda`)
    decode_all_frames(path, size=)    -> (N, H, W, 3), times: the naive reference
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from convperceiver.data.video_container import (
    Skipper,
    Timeline,
    declared_duration,
    decoded_frames,
    first_video_stream,
    open_video,
    readable_packets,
    reason,
    stated_length,
    warn_once,
)
from convperceiver.errors import VideoError

# Metadata may overstate a stream's length by a few frames; a second more is a cut-off file.
TRUNCATION_GAP_S = 1.0
DECODERS = ("pyav", "torchcodec-cuda")  # the choices of `data.decoder`


@dataclass
class VideoInfo:
    """What a container says about its first video stream."""

    path: str
    duration: float  # seconds
    fps: float
    num_frames: int  # from the container when it says, else duration * fps
    width: int
    height: int
    start_time: float  # seconds; the timestamp that decode times are relative to
    # Seconds the header promised when its packets end a second or more earlier (a cut-off
    # download, a wrong AVI frame count); duration and num_frames then describe what is there.
    header_duration: float | None = None


def _rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    # One swscale thread: its automatic pool costs more than it saves on small frames.
    if size is None:
        return frame.to_ndarray(format="rgb24", threads=1)
    height, width = size
    return frame.to_ndarray(format="rgb24", width=width, height=height, threads=1)


Picked = list[tuple[float, av.VideoFrame]]


def _pick(
    frames: Iterator[tuple[float, av.VideoFrame]], targets: Sequence[float]
) -> tuple[Picked, float]:
    """The (time, frame) on screen at each of the ascending `targets`, and the last time decoded.

    Stops at the first frame past the last target; a target before the first frame gets it.
    """
    picked: Picked = []
    previous: tuple[float, av.VideoFrame] | None = None
    for time, frame in frames:
        while len(picked) < len(targets) and targets[len(picked)] < time:
            picked.append(previous or (time, frame))
        if len(picked) == len(targets):
            return picked, time
        previous = (time, frame)
    if previous is None:
        return [], 0.0
    return picked + [previous] * (len(targets) - len(picked)), previous[0]


def _decode_targets(
    container: av.container.InputContainer, stream: av.VideoStream, targets: Sequence[float]
) -> tuple[Picked, float]:
    timeline = Timeline(container, stream)
    target_ticks = [timeline.ticks(t) for t in targets]

    def frames() -> Iterator[tuple[float, av.VideoFrame]]:
        # AVI frames are timed by decode timestamps, which skipping frames would shift.
        skipper = None if timeline.by_dts else Skipper(target_ticks)
        return decoded_frames(container, stream, timeline, skipper=skipper)

    if targets[0] > 0:
        try:
            container.seek(target_ticks[0], stream=stream, backward=True)
        except av.FFmpegError:
            pass  # an unseekable file is still at its start
        else:
            picked, last_time = _pick(frames(), targets)
            if picked and picked[0][0] <= targets[0]:
                return picked, last_time
            # The seek landed past the clip, or in data that is missing: start from the top.
            container.seek(timeline.start, stream=stream, backward=True)
    return _pick(frames(), targets)


def decode_clip(
    path: str | Path,
    times: Sequence[float],
    *,
    size: tuple[int, int] | None = None,
    decoder: str = "pyav",
) -> torch.Tensor:
    """The frames on screen at `times` (seconds from the start) as uint8 (T, H, W, 3) RGB.

    Seeks to the key frame before the earliest time, decodes forward and stops after the last
    frame needed; only the frames kept are converted to RGB, resized to `size` = (height, width)
    in the same step. Times before the first frame give the first frame, past the end the last;
    past the end of a file cut short of what its header says, the last frame decoded, with one
    warning per file. `decoder="torchcodec-cuda"` decodes on the GPU and returns a CUDA tensor
    (`video_cuda.decode_clip_cuda`) where TorchCodec and CUDA are there, else uses PyAV and
    says why in one log line per process.
    """
    if len(times) == 0:
        raise ValueError("decode_clip needs at least one time")
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r} is not one of: {', '.join(DECODERS)}")
    if decoder == "torchcodec-cuda" and gpu_decoding():
        from convperceiver.data.video_cuda import decode_clip_cuda

        return decode_clip_cuda(path, times, size=size)
    order = sorted(range(len(times)), key=lambda i: times[i])
    targets = [float(times[i]) for i in order]
    with open_video(path) as container:
        stream = first_video_stream(container, path)
        try:
            picked, last_time = _decode_targets(container, stream, targets)
        except av.FFmpegError as error:
            raise VideoError(f"{path}: cannot decode ({reason(error)})") from error
        if not picked:
            raise VideoError(f"{path}: zero frames")
        stated = stated_length(stream)
        if min(targets[-1], stated) > last_time + TRUNCATION_GAP_S:
            warn_once(
                path,
                f"truncated: frames end at {last_time:.2f} s, the header says {stated:.2f} s; "
                "later times get the last frame",
            )
        arrays: dict[int, np.ndarray] = {}
        for _, frame in picked:
            if id(frame) not in arrays:
                arrays[id(frame)] = _rgb(frame, size)
    clip = np.empty((len(times), *arrays[id(picked[0][1])].shape), dtype=np.uint8)
    for position, (_, frame) in zip(order, picked, strict=True):
        clip[position] = arrays[id(frame)]
    return torch.from_numpy(clip)


def gpu_decoding() -> bool:
    """Whether TorchCodec's CUDA decoder runs here; when not, one log line says why."""
    from convperceiver.data.video_cuda import cuda_decoding_problem

    problem = cuda_decoding_problem()
    if problem is not None:
        warn_once("data.decoder=torchcodec-cuda", f"{problem}; decoding with PyAV instead")
    return problem is None


def decode_all_frames(
    path: str | Path, *, size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, list[float]]:
    """Every frame as uint8 (N, H, W, 3) RGB and its time in seconds: the slow reference."""
    with open_video(path) as container:
        stream = first_video_stream(container, path)
        timeline = Timeline(container, stream)
        try:
            decoded = [
                (time, _rgb(frame, size))
                for time, frame in decoded_frames(container, stream, timeline)
            ]
        except av.FFmpegError as error:
            raise VideoError(f"{path}: cannot decode ({reason(error)})") from error
    if not decoded:
        raise VideoError(f"{path}: zero frames")
    return torch.from_numpy(np.stack([rgb for _, rgb in decoded])), [t for t, _ in decoded]


def probe_video(path: str | Path, *, warn: bool = True) -> VideoInfo:
    """Duration, rate and size from the container, checked against where its packets end.

    Reads packets (without decoding them) from the last key frame before the stated end: a
    header that promises a second or more beyond them is overstated, and the info describes
    the packets instead, with `header_duration` set and, if `warn`, one warning per file.
    Decodes only when the container states no duration.
    """
    with open_video(path) as container:
        stream = first_video_stream(container, path)
        timeline = Timeline(container, stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = declared_duration(container, stream)
        num_frames = stream.frames
        header_duration = None
        if duration <= 0:
            duration, num_frames = _measure(path, container, stream, timeline, rate)
        else:
            stated = max(duration, stated_length(stream))
            end = _packets_end(container, stream, timeline, stated)
            if end is None:
                raise VideoError(f"{path}: zero frames (the file ends before its first frame)")
            if end < stated - TRUNCATION_GAP_S:
                header_duration, duration = stated, end
                num_frames = round(end * float(rate)) if rate else 0
                if warn:
                    warn_once(path, overstated_problem(stated, end))
        if not rate and duration > 0:
            rate = Fraction(num_frames) / Fraction(duration)
        if num_frames == 0:
            num_frames = round(duration * float(rate or 0))
        return VideoInfo(
            path=str(path),
            duration=duration,
            fps=float(rate or 0),
            num_frames=max(num_frames, 1),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            start_time=float(timeline.start * timeline.time_base),
            header_duration=header_duration,
        )


def overstated_problem(header_duration: float, duration: float) -> str:
    """The one line that says a file holds less than its header promises."""
    return (
        f"truncated or mislabelled: the header says {header_duration:.2f} s, its frames end at "
        f"{duration:.2f} s; the frames it has are used"
    )


def _packets_end(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    timeline: Timeline,
    stated: float,
) -> float | None:
    """Seconds where the stream's last readable packet ends; None when no packet can be read.

    Demuxing is cheap (no decoding): from the key frame before the stated end, that is the last
    group of pictures; a cut-off MP4 has nothing there (its index points past the end of the
    file) and a cut-off AVI has no index to seek with, so those are read from the start.
    """
    for ticks in (timeline.ticks(stated), timeline.start):
        try:
            container.seek(ticks, stream=stream, backward=True)
        except av.FFmpegError:
            continue
        stamps = [
            (packet.dts if timeline.by_dts else packet.pts, packet.duration or 0)
            for packet in readable_packets(container, stream)
            if packet.size
        ]
        ends = [start + length for start, length in stamps if start is not None]
        if ends:
            return float((max(ends) - timeline.start) * timeline.time_base)
    return None


def _measure(
    path: str | Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    timeline: Timeline,
    rate: Fraction | None,
) -> tuple[float, int]:
    """Duration and frame count by decoding, for containers that do not state them."""
    count, last = 0, 0.0
    try:
        for last, _ in decoded_frames(container, stream, timeline):  # noqa: B007
            count += 1
    except av.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode ({reason(error)})") from error
    if count == 0:
        raise VideoError(f"{path}: zero frames")
    return last + (1 / float(rate) if rate else 0.0), count
