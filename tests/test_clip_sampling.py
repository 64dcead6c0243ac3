"""Clip timing: windows inside the video, even spacing, the seed's clip count, stretching."""

from __future__ import annotations

import random

import numpy as np
import pytest

from convperceiver.data.clip_sampling import random_clip_times, uniform_clip_times


def assert_even(times: list[float], span: float) -> None:
    assert np.allclose(np.diff(times), span / len(times))


def test_random_clips_lie_inside_the_video_and_are_evenly_spaced():
    rng = random.Random(0)
    starts = set()
    for _ in range(200):
        times = random_clip_times(10.0, clip_duration=2.0, num_frames=16, rng=rng)
        assert len(times) == 16 and times[0] >= 0 and times[-1] <= 10.0
        assert times[-1] - times[0] < 2.0
        assert_even(times, 2.0)
        starts.add(round(times[0], 6))
    assert len(starts) == 200
    assert min(starts) < 1 and max(starts) > 7  # the whole video gets sampled


def test_random_clips_are_reproducible_for_a_seed():
    draw = [
        random_clip_times(10.0, clip_duration=2.0, num_frames=4, rng=random.Random(s))
        for s in (1, 1, 2)
    ]
    assert draw[0] == draw[1] != draw[2]


@pytest.mark.parametrize("duration", [0.0, 0.3, 1.99])
def test_a_short_video_is_stretched_in_order_never_looped(duration):
    times = random_clip_times(duration, clip_duration=2.0, num_frames=16, rng=random.Random(0))
    assert len(times) == 16 and times == sorted(times)
    assert times[0] >= 0 and times[-1] <= duration
    assert_even(times, duration)


@pytest.mark.parametrize(
    ("duration", "clip", "count"),
    [(1.0, 2.0, 1), (2.0, 2.0, 1), (5.9, 2.0, 2), (6.0, 2.0, 3), (0.7, 0.1, 7)],  # 0.7 / 0.1 < 7
)
def test_num_clips_zero_takes_every_whole_window(duration, clip, count):
    clips = uniform_clip_times(duration, clip_duration=clip, num_frames=8, num_clips=0)
    assert len(clips) == count
    span = min(clip, duration)
    for k, times in enumerate(clips):
        assert times[0] > k * span and times[-1] < (k + 1) * span  # consecutive, no overlap
        assert_even(times, span)


def test_max_clips_caps_by_spreading_windows_over_the_whole_video():
    clips = uniform_clip_times(100.0, clip_duration=2.0, num_frames=4, num_clips=0, max_clips=10)
    assert len(clips) == 10
    starts = [times[0] - 0.25 for times in clips]
    assert starts[0] == pytest.approx(0) and starts[-1] == pytest.approx(98)
    assert np.allclose(np.diff(starts), 98 / 9)
    assert len(uniform_clip_times(100.0, clip_duration=2.0, num_frames=4, num_clips=0)) == 50


def test_fixed_clip_counts_span_the_video():
    three = uniform_clip_times(10.0, clip_duration=2.0, num_frames=2, num_clips=3)
    assert [t[0] for t in three] == pytest.approx([0.5, 4.5, 8.5])
    one = uniform_clip_times(10.0, clip_duration=2.0, num_frames=2, num_clips=1)
    assert one == [pytest.approx([4.5, 5.5])]
    short = uniform_clip_times(1.0, clip_duration=2.0, num_frames=2, num_clips=3)
    assert short == [pytest.approx([0.25, 0.75])] * 3


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="clip_duration"):
        random_clip_times(5.0, clip_duration=0, num_frames=4, rng=random.Random(0))
    with pytest.raises(ValueError, match="num_frames"):
        uniform_clip_times(5.0, clip_duration=1, num_frames=0, num_clips=1)
    with pytest.raises(ValueError, match="num_clips"):
        uniform_clip_times(5.0, clip_duration=1, num_frames=4, num_clips=-1)
