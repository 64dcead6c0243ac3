"""A video file's first stream through PyAV: opening it, timing its frames, walking them.

What the readers (`video`: probing and decoding) and the writer (`video_write`) share; with
them, the only modules that import `av`. Times are seconds from the start of the stream.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av

from convperceiver.errors import VideoError

log = logging.getLogger(__name__)

# Frame threads decode a whole file faster but a clip slower (they start and drain per clip:
# 50 vs 44 clips/s on 2 cores); slice threads cost nothing and help streams cut in slices.
THREAD_TYPE = "SLICE"

WARNED: set[str] = set()  # files already named in a warning by this process


def warn_once(path: str | Path, message: str) -> None:
    if str(path) not in WARNED:
        WARNED.add(str(path))
        log.warning("%s: %s", path, message)


class Timeline:
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


def reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def open_video(path: str | Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: cannot open ({reason(error)})") from error


def first_video_stream(container: av.container.InputContainer, path: str | Path) -> av.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = THREAD_TYPE
    return stream


def declared_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds the stream says it lasts (the container's length if it does not); 0 if unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / av.time_base


def stated_length(stream: av.VideoStream) -> float:
    """Seconds the stream's own header promises; 0 if it promises nothing.

    A cut-off AVI reports the duration of the packets left, but its header keeps the frame
    count it was written with.
    """
    seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
    if stream.frames and stream.average_rate:
        seconds = max(seconds, stream.frames / float(stream.average_rate))
    return seconds


class Skipper:
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


def decoded_frames(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    timeline: Timeline,
    *,
    skipper: Skipper | None = None,
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


def readable_packets(
    container: av.container.InputContainer, stream: av.VideoStream
) -> Iterator[av.Packet]:
    """The stream's packets from where the container is positioned; a read error ends them."""
    packets = container.demux(stream)
    while True:
        try:
            yield next(packets)
        except (StopIteration, av.FFmpegError):
            return
