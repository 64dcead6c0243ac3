"""The synthetic action set: time-reversed pairs, motion in every window, HMDB51's layout."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from convperceiver.data import synthetic, synthetic_render
from convperceiver.data.synthetic import generate_synthetic
from convperceiver.data.synthetic_render import MIRRORED, SYNTHETIC_CLASSES, render_video
from convperceiver.data.video import decode_all_frames
from convperceiver.errors import DatasetError

TINY = dict(classes=4, videos_per_class=3, frames=16, size=32, workers=1)
PAIRS = list(zip(SYNTHETIC_CLASSES[::2], SYNTHETIC_CLASSES[1::2], strict=True))
MOTION = {
    "moving_left": (-1, 0),
    "moving_right": (1, 0),
    "moving_up": (0, -1),
    "moving_down": (0, 1),
}
WHOLE_FRAME = (slice(0, 32), slice(0, 32))
SPLIT_LINE = re.compile(r"^(\S+\.avi) ([012]) ?$")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "set", **TINY)


def scene_of(
    class_name: str, *, index: int, frames: int = 16, size: int = 32, background: str = "plain"
):
    """The scene drawn for a class's video, and whether that class plays it backwards."""
    pair, backwards = divmod(SYNTHETIC_CLASSES.index(class_name), 2)
    scene = synthetic_render._sample_scene(
        pair, seed=0, index=index, frames=frames, size=size, background=background
    )
    return scene, bool(backwards)


def centroids(coverage: np.ndarray) -> np.ndarray:
    """Per frame, the (x, y) centre of a (T, H, W) coverage map, in the shapes' pixel units."""
    pixel = np.arange(coverage.shape[-1]) + 0.5
    total = coverage.sum(axis=(1, 2))
    x = (coverage.sum(axis=1) * pixel).sum(axis=1) / total
    y = (coverage.sum(axis=2) * pixel).sum(axis=1) / total
    return np.stack([x, y], axis=1)


def read_split(path: Path) -> dict[str, int]:
    lines = path.read_text().splitlines()
    assert lines and all(SPLIT_LINE.match(line) for line in lines), path
    return {line.split()[0]: int(line.split()[1]) for line in lines}


def film(video_name: str) -> str:
    return video_name.split("_", 1)[0]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_second_class_is_the_first_played_backwards(first, second):
    forwards = render_video(first, seed=3, index=1, frames=16, size=32)
    backwards = render_video(second, seed=3, index=1, frames=16, size=32)
    assert forwards.dtype == np.uint8 and forwards.shape == (16, 32, 32, 3)
    np.testing.assert_array_equal(backwards, forwards[::-1])
    assert not np.array_equal(backwards, forwards)


def test_reversal_survives_encoding(tiny_set):
    for first, second in PAIRS[: TINY["classes"] // 2]:
        for path in sorted((tiny_set / "videos" / first).iterdir()):
            twin = tiny_set / "videos" / second / path.name.replace(f"_{first}_", f"_{second}_")
            forwards, _ = decode_all_frames(path)
            backwards, _ = decode_all_frames(twin)
            assert forwards.shape == backwards.shape == (16, 32, 32, 3)
            error = (backwards.int() - forwards.flip(0).int()).abs().float().mean().item()
            assert error < 4, (path.name, error)


def test_encoding_keeps_the_rendered_frames(tiny_set):
    # Video 2 of the second pair is clip 0 of that pair's second film (two clips per film).
    path = tiny_set / "videos" / "moving_up" / "film003_moving_up_syn_0.avi"
    raw = render_video("moving_up", seed=0, index=2, frames=16, size=32).astype(int)
    decoded, _ = decode_all_frames(path)
    assert np.abs(decoded.numpy().astype(int) - raw).mean() < 8


@pytest.mark.parametrize("background", synthetic_render.BACKGROUNDS)
@pytest.mark.parametrize("class_name", SYNTHETIC_CLASSES[::2])
def test_the_label_changes_in_every_window_of_60_percent(class_name, background):
    frames, size = 16, 32
    window = math.ceil(0.6 * frames)
    for index in range(6):
        scene, _ = scene_of(
            class_name, index=index, frames=frames, size=size, background=background
        )
        video = synthetic_render._draw(replace(scene, distractors=[]), size).astype(int)
        for start in range(frames - window + 1):
            changed = np.abs(video[start + window - 1] - video[start]).max(axis=-1) > 24
            assert changed.mean() > 0.015, (index, start)


@pytest.mark.parametrize("frames", [16, 48, 90])
def test_every_window_of_60_percent_sees_a_alone_then_b_alone(frames):
    scene, _ = scene_of("a_then_b", index=0, frames=frames)
    a, b = (layer.opacity for layer in scene.actors)
    window = math.ceil(0.6 * frames)
    for start in range(frames - window + 1):
        end = start + window - 1
        assert (a[start], b[start], a[end], b[end]) == (1, 0, 0, 1), start


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("class_name", MOTION)
def test_shapes_move_the_way_the_label_says(class_name, flip):
    for index in range(4):
        scene, backwards = scene_of(class_name, index=index)
        coverage = synthetic_render._coverage(scene.actors[0], *WHOLE_FRAME)
        coverage = coverage[::-1] if backwards else coverage
        if flip:
            coverage = coverage[:, :, ::-1]
        path = centroids(coverage)
        expected = MOTION[MIRRORED[class_name] if flip else class_name]
        assert np.dot(path[-1] - path[0], expected) > 0.3 * 32


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("class_name", ["rotating_clockwise", "rotating_anticlockwise"])
def test_rotation_turns_the_way_the_label_says(class_name, flip):
    for index in range(4):
        scene, backwards = scene_of(class_name, index=index)
        body, marker = (synthetic_render._coverage(layer, *WHOLE_FRAME) for layer in scene.actors)
        if flip:
            body, marker = body[:, :, ::-1], marker[:, :, ::-1]
        arm = centroids(marker) - centroids(body)  # (T, 2) from the body's centre to the marker
        arm = arm[::-1] if backwards else arm
        # Image rows grow downwards, so a positive cross product turns clockwise on screen.
        turn = arm[:-1, 0] * arm[1:, 1] - arm[:-1, 1] * arm[1:, 0]
        clockwise = (MIRRORED[class_name] if flip else class_name) == "rotating_clockwise"
        assert np.all(turn > 0) if clockwise else np.all(turn < 0)


def test_mirrored_swaps_only_direction_classes():
    assert MIRRORED["moving_left"] == "moving_right"
    assert MIRRORED["rotating_anticlockwise"] == "rotating_clockwise"
    assert all(MIRRORED[MIRRORED[name]] == name for name in SYNTHETIC_CLASSES)
    assert [n for n in SYNTHETIC_CLASSES if MIRRORED[n] != n] == [
        "moving_left",
        "moving_right",
        "rotating_clockwise",
        "rotating_anticlockwise",
    ]


def test_a_seed_fixes_the_frames():
    video = render_video("growing", seed=5, index=7, frames=8, size=32)
    np.testing.assert_array_equal(
        video, render_video("growing", seed=5, index=7, frames=8, size=32)
    )
    assert not np.array_equal(video, render_video("growing", seed=6, index=7, frames=8, size=32))
    assert not np.array_equal(video, render_video("growing", seed=5, index=8, frames=8, size=32))


def test_layout_follows_hmdb51(tmp_path):
    root = generate_synthetic(
        tmp_path / "set", classes=2, videos_per_class=16, frames=4, size=16, workers=2
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no staging folder left
    assert {"README.txt", "meta.json", "splits", "videos"} <= {p.name for p in root.iterdir()}
    splits = {}
    for class_name in ["moving_left", "moving_right"]:
        videos = {p.name for p in (root / "videos" / class_name).iterdir()}
        assert len(videos) == 16 and all(f"_{class_name}_" in name for name in videos)
        assert len({film(name) for name in videos}) == 8  # two clips per film
        for split in (1, 2, 3):
            ids = read_split(root / "splits" / f"{class_name}_test_split{split}.txt")
            assert set(ids) == videos
            train = {film(name) for name, id_ in ids.items() if id_ == 1}
            assert train.isdisjoint(film(name) for name, id_ in ids.items() if id_ == 2)
            counts = [list(ids.values()).count(id_) for id_ in (0, 1, 2)]
            assert counts[0] > 0 and 0.2 < counts[2] / (counts[1] + counts[2]) < 0.4, counts
            splits[class_name, split] = ids
    for split in (1, 2, 3):  # a video and its reversed twin always share a side
        left, right = splits["moving_left", split], splits["moving_right", split]
        assert all(right[name.replace("_left_", "_right_")] == id_ for name, id_ in left.items())
    assert len({tuple(splits["moving_left", split].items()) for split in (1, 2, 3)}) == 3


def test_generation_is_deterministic(tiny_set, tmp_path):
    again = generate_synthetic(tmp_path / "set", **TINY)
    files = sorted(p.relative_to(tiny_set) for p in tiny_set.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (tiny_set / name).read_bytes() == (again / name).read_bytes(), name


def test_a_rerun_with_the_same_parameters_keeps_the_set(tiny_set):
    before = {p: p.stat().st_mtime_ns for p in tiny_set.rglob("*")}
    assert generate_synthetic(tiny_set, **{**TINY, "workers": 2}) == tiny_set
    assert {p: p.stat().st_mtime_ns for p in tiny_set.rglob("*")} == before


def test_other_parameters_are_refused(tiny_set):
    with pytest.raises(DatasetError, match=r"frames 16 there, 8 asked.*another folder"):
        generate_synthetic(tiny_set, **{**TINY, "frames": 8})


def test_a_folder_that_is_not_a_set_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a synthetic set"):
        generate_synthetic(tmp_path, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_empty_folder_is_filled(tmp_path):
    (tmp_path / "set").mkdir()
    root = generate_synthetic(tmp_path / "set", **{**TINY, "classes": 2, "frames": 2})
    assert (root / "meta.json").is_file()


def test_an_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_write(path, frames, fps):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_video", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(tmp_path / "set", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_a_set_another_process_finished_first_is_kept(tmp_path, monkeypatch):
    write_set = synthetic._write_set

    def racing_write_set(root, meta, workers):
        write_set(root, meta, workers)
        shutil.copytree(root, tmp_path / "set")

    monkeypatch.setattr(synthetic, "_write_set", racing_write_set)
    assert generate_synthetic(tmp_path / "set", **TINY) == tmp_path / "set"
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


@pytest.mark.parametrize("classes", [0, 3, 16])
def test_classes_must_be_whole_pairs(tmp_path, classes):
    with pytest.raises(ValueError, match="even"):
        generate_synthetic(tmp_path / "set", **{**TINY, "classes": classes})


def test_the_plain_background_is_flat_and_the_textured_one_varies():
    plain, _ = scene_of("growing", index=0)
    textured, _ = scene_of("growing", index=0, background="textured")
    assert np.ptp(plain.background) == 0
    assert np.ptp(textured.background.mean(axis=-1)) > 0.1
    assert all(
        np.linalg.norm(layer.colour - 0.5) > 0.45 for layer in plain.distractors + plain.actors
    )


def test_a_set_of_the_other_background_is_refused(tiny_set):
    with pytest.raises(DatasetError, match="background 'plain' there, 'textured' asked"):
        generate_synthetic(tiny_set, **TINY, background="textured")


def test_unknown_background_is_refused(tmp_path):
    with pytest.raises(ValueError, match="plain"):
        generate_synthetic(tmp_path / "set", **TINY, background="noisy")
    with pytest.raises(ValueError, match="textured"):
        render_video("growing", seed=0, index=0, frames=4, size=16, background="noisy")


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="moving_left"):
        render_video("jumping", seed=0, index=0, frames=4, size=16)
