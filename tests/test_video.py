"""Decoding: a seek-based clip holds exactly the frames a full decode shows at the same times."""

from __future__ import annotations

import bisect
import itertools
import logging
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import (
    moving_frames,
    shared_videos,
    write_hostile,
    write_overstated,
    write_tiny,
)

from convperceiver.data import video_container
from convperceiver.data.clip_sampling import uniform_clip_times
from convperceiver.data.datasets import EvalClipDataset, TrainClipDataset
from convperceiver.data.eval_clips import EvalClipSpec
from convperceiver.data.records import VideoRecord
from convperceiver.data.transforms import train_transform
from convperceiver.data.video import decode_all_frames, decode_clip, probe_video
from convperceiver.data.video_cuda import cuda_decoding_problem
from convperceiver.data.video_write import write_video
from convperceiver.errors import VideoError

SIZE = (64, 86)  # (height, width): small, so the full reference decodes stay fast

# What the shared clips' README says a full decode with PyAV yields.
SHARED = {
    "kinetics_armwrestling_340x256_28fps.mp4": (280, 28.0, 340, 256),
    "mpeg4_320x240_25fps.avi": (164, 25.0, 320, 240),
    "h264_426x240_29.97fps.mp4": (300, 30000 / 1001, 426, 240),
    "h264_340x256_30fps_32frames.mp4": (32, 30.0, 340, 256),
}


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("tiny")
    return [
        write_tiny(folder / "mpeg4.avi"),  # a key frame every 12 frames
        write_tiny(folder / "h264.mp4", codec="libx264"),  # B-frames
        write_tiny(folder / "odd.avi", height=61, width=97, fps=30000 / 1001),
    ]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    return write_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def overstated(tmp_path_factory) -> dict[str, Path]:
    return write_overstated(tmp_path_factory.mktemp("overstated"))


def fresh_copies(files: dict[str, Path], folder: Path) -> dict[str, Path]:
    """Copies under new names: warnings are once per file and process."""
    return {name: shutil.copyfile(path, folder / path.name) for name, path in files.items()}


def warnings_naming(caplog, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]


def on_screen(frames: torch.Tensor, times: list[float], at: list[float]) -> torch.Tensor:
    """The full decode's frame on screen at each time: the last one with time <= t."""
    return frames[[max(0, bisect.bisect_right(times, t) - 1) for t in at]]


def clip_times(duration: float, frame_times: list[float], rng: random.Random) -> list[list[float]]:
    """16-frame windows at random places, exact frame times out of order, times off both ends."""
    starts = [rng.uniform(0, max(duration - 2, 0)) for _ in range(6)]
    windows = [[start + 2 * (i + 0.5) / 16 for i in range(16)] for start in starts]
    windows.append(rng.sample(frame_times, min(8, len(frame_times))))
    windows.append([-1.0, 0.0, duration / 2, duration, duration + 5])
    return windows


def assert_clips_match_full_decode(path: Path, size: tuple[int, int] | None) -> None:
    frames, times = decode_all_frames(path, size=size)
    assert all(a < b for a, b in itertools.pairwise(times)), f"{path.name}: times not increasing"
    info = probe_video(path)
    for at in clip_times(info.duration, times, random.Random(path.name)):
        clip = decode_clip(path, at, size=size)
        assert clip.dtype == torch.uint8 and clip.shape == (len(at), *frames.shape[1:])
        assert torch.equal(clip, on_screen(frames, times, at)), f"{path.name} at {at}"


def test_clips_match_the_full_decode_on_every_shared_clip():
    for path in shared_videos():
        assert_clips_match_full_decode(path, SIZE)


def test_clips_match_the_full_decode_on_tiny_files(tiny_files):
    for path in tiny_files:
        assert_clips_match_full_decode(path, None)


def test_probe_reads_the_shared_clips_metadata():
    for path in shared_videos():
        if path.name not in SHARED:
            continue
        num_frames, fps, width, height = SHARED[path.name]
        info = probe_video(path)
        assert (info.width, info.height, info.num_frames) == (width, height, num_frames)
        assert info.fps == pytest.approx(fps)
        assert info.duration == pytest.approx(num_frames / fps, abs=0.05)
        assert len(decode_all_frames(path, size=(16, 16))[1]) == num_frames


def test_avi_frames_are_timed_in_display_order():
    # DivX-style packed B-frames carry presentation times 1, 2, 4, 3, ...; decode times do not.
    path = next((p for p in shared_videos() if p.suffix == ".avi"), None)
    if path is None:
        pytest.skip("no AVI among the shared clips")
    _, times = decode_all_frames(path, size=(16, 16))
    assert np.allclose(np.diff(times), 1 / probe_video(path).fps)


def test_probe_a_tiny_file(tiny_files):
    info = probe_video(tiny_files[0])
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 48, 40, 25.0)
    assert info.duration == pytest.approx(1.6) and info.start_time == 0.0
    assert info.header_duration is None


def test_resize_happens_in_the_conversion(tiny_files):
    clip = decode_clip(tiny_files[0], [0.1, 0.5], size=(20, 30))
    assert clip.shape == (2, 20, 30, 3)


def test_repeated_times_repeat_frames_in_order(tiny_files):
    clip = decode_clip(tiny_files[0], [0.5, 0.5, 0.1, 0.5])
    assert torch.equal(clip[0], clip[1]) and torch.equal(clip[0], clip[3])
    assert not torch.equal(clip[0], clip[2])


def test_write_video_round_trips_an_odd_size(tmp_path):
    source = moving_frames(12, 61, 97)
    for codec, suffix in (("mpeg4", ".avi"), ("libx264", ".mp4")):
        path = tmp_path / f"odd{suffix}"
        write_video(path, source, 25, codec)
        frames, _ = decode_all_frames(path)
        assert frames.shape == (12, 61, 97, 3)
        assert np.abs(frames.numpy().astype(int) - source).mean() < 4


def test_grayscale_video_decodes_to_equal_channels(hostile):
    clip = decode_clip(hostile["grayscale"], [0.0, 1.0])
    assert clip.shape == (2, 48, 64, 3)
    assert torch.equal(clip[..., 0], clip[..., 1]) and torch.equal(clip[..., 0], clip[..., 2])


def test_a_one_frame_video_repeats_its_frame(hostile):
    clip = decode_clip(hostile["one_frame"], [0.0, 0.5, 3.0])
    assert torch.equal(clip[0], clip[1]) and torch.equal(clip[0], clip[2])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("zero_bytes", "cannot open"),
        ("text", "cannot open"),
        ("truncated_mp4", "cannot open"),
        ("no_frames", "zero frames"),
        ("no_video_stream", "no video stream"),
    ],
)
def test_unreadable_files_raise_a_video_error_naming_them(hostile, name, message):
    for read in (probe_video, lambda p: decode_clip(p, [0.5]), decode_all_frames):
        with pytest.raises(VideoError, match=message) as error:
            read(hostile[name])
        assert str(hostile[name]) in str(error.value)


@pytest.mark.parametrize("name", ["cut_mp4", "cut_avi", "overstated_avi"])
def test_probe_finds_where_an_overstated_file_really_ends(overstated, name):
    path = overstated[name]
    _, times = decode_all_frames(path)
    info = probe_video(path, warn=False)
    assert info.header_duration == pytest.approx(16.0 if name == "overstated_avi" else 4.0)
    frames_end = times[-1] + 1 / info.fps
    assert frames_end < info.header_duration - 1
    assert info.duration == pytest.approx(frames_end, abs=0.2)
    assert info.num_frames == pytest.approx(len(times), abs=5)


@pytest.mark.parametrize("name", ["cut_mp4", "cut_avi", "overstated_avi"])
def test_times_past_the_real_end_get_the_last_frame_with_one_warning(
    overstated, tmp_path, caplog, name
):
    path = fresh_copies(overstated, tmp_path)[name]
    frames, times = decode_all_frames(path)
    with caplog.at_level(logging.WARNING):
        promised = probe_video(path).header_duration
        clip = decode_clip(path, [0.0, times[-1] / 2, promised - 0.1, promised + 3])
        decode_clip(path, [promised - 0.5])
    assert torch.equal(clip, on_screen(frames, times, [0.0, times[-1] / 2, times[-1], times[-1]]))
    assert len(warnings_naming(caplog, path)) == 1


def test_decode_clip_alone_warns_once_about_a_cut_off_file(overstated, tmp_path, caplog):
    path = fresh_copies(overstated, tmp_path)["cut_avi"]
    frames, _ = decode_all_frames(path)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert torch.equal(decode_clip(path, [3.5]), frames[-1:])
    (warning,) = warnings_naming(caplog, path)
    assert "truncated" in warning


def test_training_and_evaluation_use_the_frames_an_overstated_file_has(
    overstated, tmp_path, caplog
):
    files = fresh_copies(overstated, tmp_path)
    records = [VideoRecord(str(path), 0, name) for name, path in files.items()]
    spec = EvalClipSpec(num_frames=4, clip_duration=0.5, size=(32, 32), crop_size=24)
    with caplog.at_level(logging.WARNING):
        train = TrainClipDataset(
            records,
            num_frames=4,
            clip_duration=0.5,
            size=(32, 32),
            transform=train_transform(crop_size=24, horizontal_flip=False),
        )
        evaluate = EvalClipDataset(records, spec=spec)
        trained = [train[i] for i in range(len(records)) for _ in range(3)]
        items = [evaluate[i] for i in range(len(evaluate))]
    assert [i["substituted"] for i in trained] == [0] * len(trained)
    assert None not in items
    assert sorted({i["video_index"] for i in items}) == list(range(len(records)))
    clips = Counter(i["video_index"] for i in items)
    for video, path in enumerate(files.values()):
        assert len(warnings_naming(caplog, path)) == 1
        _, times = decode_all_frames(path)
        frames_end = times[-1] + 1 / probe_video(path).fps
        # Evaluation windows cover the frames there are, not what the header promised.
        assert clips[video] == len(
            uniform_clip_times(
                frames_end, clip_duration=0.5, num_frames=4, num_clips=0, max_clips=10
            )
        )


def test_a_file_cut_before_its_first_frame_stays_broken(overstated, tmp_path):
    web = overstated["cut_mp4"].with_name("web.mp4").read_bytes()
    path = tmp_path / "header_only.mp4"
    path.write_bytes(web[: web.index(b"mdat") + 4])
    for read in (probe_video, lambda p: decode_clip(p, [0.5])):
        with pytest.raises(VideoError, match="zero frames"):
            read(path)


def test_a_missing_file_raises_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="cannot open"):
        probe_video(tmp_path / "nowhere.mp4")


def test_decode_clip_needs_times(tiny_files):
    with pytest.raises(ValueError, match="at least one time"):
        decode_clip(tiny_files[0], [])


@pytest.mark.skipif(cuda_decoding_problem() is None, reason="GPU decoding runs here: no fallback")
def test_gpu_decoder_falls_back_to_pyav_and_says_why_once(tiny_files, caplog, monkeypatch):
    monkeypatch.setattr(video_container, "WARNED", set())
    path, times = tiny_files[0], [0.0, 0.5, 1.1]
    with caplog.at_level(logging.WARNING, logger=video_container.__name__):
        clips = [decode_clip(path, times, size=SIZE, decoder="torchcodec-cuda") for _ in range(2)]
    assert all(torch.equal(clip, decode_clip(path, times, size=SIZE)) for clip in clips)
    (line,) = [r.getMessage() for r in caplog.records if "torchcodec-cuda" in r.getMessage()]
    assert cuda_decoding_problem() in line and "PyAV" in line


def test_an_unknown_decoder_is_refused(tiny_files):
    with pytest.raises(ValueError, match="pyav, torchcodec-cuda"):
        decode_clip(tiny_files[0], [0.0], decoder="decord")
