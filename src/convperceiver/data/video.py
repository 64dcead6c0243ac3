"""Video files through PyAV: probe them, decode the frames a clip needs, write small ones.

The only module that imports `av`. Times are seconds from the start of the video stream
(0 = its first frame); frames come out as uint8 RGB tensors (T, H, W, 3).

    probe_video(path)                 -> VideoInfo (container metadata, checked against the
                                         last packets, which catches a header that overstates)
    decode_clip(path, times, size=, decoder=) -> (T, H, W, 3): seek, decode forward, convert
                                         kept frames (or TorchCodec on the GPU, `video_cuda`)
    decode_all_frames(path, size=)    -> (N, H, W, 3), times: the naive reference
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from convperceiver.errors import VideoError

log = logging.getLogger(__name__)

# Metadata may overstate a stream's length by a few frames; a second more is a cut-off file.
TRUNCATION_GAP_S = 1.0
# Frame threads decode a whole file faster but a clip slower (they start and drain per clip:
# 50 vs 44 clips/s on 2 cores); slice threads cost nothing and help streams cut in slices.
THREAD_TYPE = "SLICE"
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


_warned: set[str] = set()  # files already named in a warning by this process


def _warn_once(path: str | Path, message: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        log.warning("%s: %s", path, message)


class _Timeline:
    """Turns a frame's timestamp into seconds from the stream start.

    AVI stores decode order only and FFmpeg guesses presentation times from it, wrongly for
    DivX-style packed B-frames (pts 1, 2, 4, 3, ... on frames that come out in display order),
    so AVI frames are timed by their decode timestamp, which counts them in display order.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.VideoStream) -> None:
        self.time_base = stream.time_base or Fraction(1, 1_000_000)
        self.start = stream.start_time or 0
        self.by_dts = "avi" in container.format.name.split(",")
        self._previous: int | None = None

    def reset(self) -> None:
        self._previous = None

    def seconds(self, frame: av.VideoFrame) -> float:
        ticks = frame.dts if self.by_dts and frame.dts is not None else frame.pts
        ticks = frame.dts if ticks is None else ticks
        if ticks is None:  # an untimed frame follows the previous one
            ticks = self.start if self._previous is None else self._previous + (frame.duration or 1)
        self._previous = ticks
        return float((ticks - self.start) * self.time_base)

    def ticks(self, seconds: float) -> int:
        # Round down: landing one key frame early costs a little decoding, one late a retry.
        return self.start + math.floor(Fraction(seconds) / self.time_base)


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _open(path: str | Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: cannot open ({_reason(error)})") from error


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = THREAD_TYPE
    return stream


def _declared_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds the stream says it lasts (the container's length if it does not); 0 if unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / av.time_base


def _stated_length(stream: av.VideoStream) -> float:
    """Seconds the stream's own header promises; 0 if it promises nothing.

    A cut-off AVI reports the duration of the packets left, but its header keeps the frame
    count it was written with.
    """
    seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
    if stream.frames and stream.average_rate:
        seconds = max(seconds, stream.frames / float(stream.average_rate))
    return seconds


class _Skipper:
    """Says which packets hold frames that no target shows, so their decoding can be skipped.

    A frame with pts p is on screen from p until the next frame's pts, which is at most the
    smallest pts above p seen so far (decode order sends a B-frame's later reference first).
    When no target lies in [p, that pts], the frame is never shown; one tick of slack each side
    absorbs rounding between seconds and ticks. Only non-reference frames are ever skipped.
    """

    def __init__(self, targets: Sequence[int]) -> None:
        self.targets = sorted(targets)
        self.seen: list[int] = []

    def can_skip(self, pts: int | None) -> bool:
        if pts is None:
            return False
        bisect.insort(self.seen, pts)
        above = bisect.bisect_right(self.seen, pts)
        if above == len(self.seen):
            return False
        target = bisect.bisect_left(self.targets, pts - 1)
        return target == len(self.targets) or self.targets[target] > self.seen[above] + 1


def _frames(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    timeline: _Timeline,
    *,
    skipper: _Skipper | None = None,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Frames in display order with their times, from wherever the container is positioned.

    A packet the decoder rejects is dropped, as FFmpeg's own tools do, and a read error ends the
    stream early (a cut-off file), so a damaged file yields what can be decoded from it.
    """
    timeline.reset()
    context = stream.codec_context
    skipping: bool | None = None  # unknown: an earlier pass may have left skipping on
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError:
            packet = None  # drain the frames the decoder still holds
        if skipper is not None and packet is not None:
            skip = skipper.can_skip(packet.pts)
            if skip != skipping:
                context.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
        try:
            frames = context.decode(packet)
        except av.FFmpegError:
            frames = []
        for frame in frames:
            yield timeline.seconds(frame), frame
        if packet is None:
            return


def _packets(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.Packet]:
    """The stream's packets from where the container is positioned; a read error ends them."""
    packets = container.demux(stream)
    while True:
        try:
            yield next(packets)
        except (StopIteration, av.FFmpegError):
            return


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
    timeline = _Timeline(container, stream)
    target_ticks = [timeline.ticks(t) for t in targets]

    def frames() -> Iterator[tuple[float, av.VideoFrame]]:
        # AVI frames are timed by decode timestamps, which skipping frames would shift.
        skipper = None if timeline.by_dts else _Skipper(target_ticks)
        return _frames(container, stream, timeline, skipper=skipper)

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
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            picked, last_time = _decode_targets(container, stream, targets)
        except av.FFmpegError as error:
            raise VideoError(f"{path}: cannot decode ({_reason(error)})") from error
        if not picked:
            raise VideoError(f"{path}: zero frames")
        stated = _stated_length(stream)
        if min(targets[-1], stated) > last_time + TRUNCATION_GAP_S:
            _warn_once(
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
    if problem is not None and "torchcodec-cuda" not in _warned:
        _warned.add("torchcodec-cuda")
        log.warning("data.decoder=torchcodec-cuda: %s; decoding with PyAV instead", problem)
    return problem is None


def decode_all_frames(
    path: str | Path, *, size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, list[float]]:
    """Every frame as uint8 (N, H, W, 3) RGB and its time in seconds: the slow reference."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        timeline = _Timeline(container, stream)
        try:
            decoded = [
                (time, _rgb(frame, size)) for time, frame in _frames(container, stream, timeline)
            ]
        except av.FFmpegError as error:
            raise VideoError(f"{path}: cannot decode ({_reason(error)})") from error
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
    with _open(path) as container:
        stream = _video_stream(container, path)
        timeline = _Timeline(container, stream)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = _declared_duration(container, stream)
        num_frames = stream.frames
        header_duration = None
        if duration <= 0:
            duration, num_frames = _measure(path, container, stream, timeline, rate)
        else:
            stated = max(duration, _stated_length(stream))
            end = _packets_end(container, stream, timeline, stated)
            if end is None:
                raise VideoError(f"{path}: zero frames (the file ends before its first frame)")
            if end < stated - TRUNCATION_GAP_S:
                header_duration, duration = stated, end
                num_frames = round(end * float(rate)) if rate else 0
                if warn:
                    _warn_once(path, overstated_problem(stated, end))
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
    timeline: _Timeline,
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
            for packet in _packets(container, stream)
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
    timeline: _Timeline,
    rate: Fraction | None,
) -> tuple[float, int]:
    """Duration and frame count by decoding, for containers that do not state them."""
    count, last = 0, 0.0
    try:
        for last, _ in _frames(container, stream, timeline):  # noqa: B007
            count += 1
    except av.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode ({_reason(error)})") from error
    if count == 0:
        raise VideoError(f"{path}: zero frames")
    return last + (1 / float(rate) if rate else 0.0), count


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
        raise VideoError(f"{path}: cannot write ({_reason(error)})") from error
