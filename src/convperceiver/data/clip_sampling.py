"""Where clips sit in a video: pure functions from a duration (seconds) to frame times.

A clip is a window of `clip_duration` seconds and `num_frames` times spread evenly over it,
each at the centre of one of `num_frames` equal slices, so frames never fall on a window's
edge and two adjacent windows never share one. A video shorter than a clip becomes one
window over its whole length whose frames repeat (a stretch): never a loop, which would
turn "A then B" into "A, B, A" and change the label of a temporal-order class.
"""

from __future__ import annotations

import math
import random

# Keeps a duration that is a whole number of clips, up to rounding, from losing one.
_EPS = 1e-9


def _check(clip_duration: float, num_frames: int) -> None:
    if clip_duration <= 0:
        raise ValueError(f"clip_duration={clip_duration} must be > 0")
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames} must be >= 1")


def _times(start: float, span: float, num_frames: int) -> list[float]:
    return [start + span * (i + 0.5) / num_frames for i in range(num_frames)]


def random_clip_times(
    duration: float, *, clip_duration: float, num_frames: int, rng: random.Random
) -> list[float]:
    """`num_frames` times (seconds) over a random `clip_duration` window inside [0, duration]."""
    _check(clip_duration, num_frames)
    if duration <= clip_duration:
        return _times(0.0, max(duration, 0.0), num_frames)
    return _times(rng.uniform(0.0, duration - clip_duration), clip_duration, num_frames)


def _spread(duration: float, clip_duration: float, num_clips: int) -> list[float]:
    """Starts of `num_clips` windows from the video's start to its end (one: in the middle)."""
    room = max(duration - clip_duration, 0.0)
    if num_clips == 1:
        return [room / 2]
    return [room * k / (num_clips - 1) for k in range(num_clips)]


def uniform_clip_times(
    duration: float,
    *,
    clip_duration: float,
    num_frames: int,
    num_clips: int,
    max_clips: int = 0,
) -> list[list[float]]:
    """Frame times (seconds) of the clips that evaluate a video, in order.

    `num_clips` windows spread evenly from the start to the end; `num_clips=0` means as many
    consecutive non-overlapping windows from the start as fit (at least one), the seed's
    protocol, and `max_clips` > 0 caps that count by spreading the capped number evenly instead.
    """
    _check(clip_duration, num_frames)
    if num_clips < 0 or max_clips < 0:
        raise ValueError(f"num_clips={num_clips} and max_clips={max_clips} must be >= 0")
    span = min(clip_duration, max(duration, 0.0))
    if num_clips > 0:
        starts = _spread(duration, clip_duration, num_clips)
    else:
        fitting = max(1, math.floor(duration / clip_duration + _EPS))
        if 0 < max_clips < fitting:
            starts = _spread(duration, clip_duration, max_clips)
        else:
            starts = [k * clip_duration for k in range(fitting)]
    return [_times(start, span, num_frames) for start in starts]
