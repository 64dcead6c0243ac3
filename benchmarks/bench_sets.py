"""Generated video sets shaped like HMDB51 and Kinetics, written once and kept on disk.

    hmdb51-like:   320x240 mpeg4 (MPEG-4 Part 2, the codec XviD implements) in AVI, 30 fps,
                   2-10 s, a key frame every 12 frames (FFmpeg's default for mpeg4)
    kinetics-like: 340x256 H.264 (libx264) in MP4, 30 fps, 10 s, key frames 250 apart
                   (libx264's default), as Kinetics' trimmed YouTube clips

Each video is a textured background panning under a few shapes that move and bounce, with fresh
noise on every frame, so the encoder spends real bits on every frame (flat synthetic frames
compress to almost nothing and decode faster than camera footage). A set is a `list` dataset:
`<set>/videos/<class>/<n>.<ext>` with `train.txt` naming every video, and `val.txt` and
`test.txt` one per class, so the training loader sees the whole set.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from convperceiver.data.video_write import write_video

DEFAULT_ROOT = Path.home() / ".cache" / "convperceiver-bench"
CLASSES = 10
META_FILE = "set.json"


@dataclass(frozen=True)
class SetSpec:
    """How one generated set's videos are written."""

    name: str
    width: int
    height: int
    fps: int
    codec: str  # FFmpeg encoder name
    suffix: str  # the container follows it
    min_seconds: float
    max_seconds: float
    count: int  # videos in the full set


SETS = {
    spec.name: spec
    for spec in (
        SetSpec("hmdb51-like", 320, 240, 30, "mpeg4", ".avi", 2.0, 10.0, 500),
        SetSpec("kinetics-like", 340, 256, 30, "libx264", ".mp4", 10.0, 10.0, 100),
    )
}


def moving_shapes(rng: np.random.Generator, *, frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (frames, height, width, 3): a panning textured background, bouncing shapes, noise."""
    coarse = rng.uniform(40, 215, (height // 16 + 2, width // 16 + 2, 3))
    # Twice the frame, so the pan never runs out of background.
    ground = np.tile(np.kron(coarse, np.ones((16, 16, 1))), (1, 2, 1)).astype(np.int16)
    pan = rng.uniform(-2.0, 2.0)
    shapes = int(rng.integers(2, 5))
    sizes = rng.integers(height // 10, height // 3, (shapes, 2))
    colours = rng.integers(0, 256, (shapes, 3))
    position = rng.uniform(0, 1, (shapes, 2)) * (np.array([height, width]) - sizes)
    velocity = rng.uniform(-4, 4, (shapes, 2))
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        shift = int(pan * t) % width
        frame = ground[:height, shift : shift + width].copy()
        for (h, w), colour, (y, x) in zip(sizes, colours, position.astype(int), strict=True):
            frame[y : y + h, x : x + w] = colour
        position += velocity
        limit = np.array([height, width]) - sizes
        velocity = np.where((position < 0) | (position > limit), -velocity, velocity)
        position = np.clip(position, 0, limit)
        frame += rng.integers(-10, 11, frame.shape, dtype=np.int16)
        video[t] = np.clip(frame, 0, 255)
    return video


def _write_one(job: tuple[int, str], *, spec: SetSpec, seed: int) -> None:
    index, target = job
    rng = np.random.default_rng((seed, index))
    seconds = rng.uniform(spec.min_seconds, spec.max_seconds)
    frames = moving_shapes(
        rng, frames=round(seconds * spec.fps), height=spec.height, width=spec.width
    )
    partial_file = Path(target).parent / f"{Path(target).stem}.partial{spec.suffix}"
    write_video(partial_file, frames, spec.fps, spec.codec)
    os.replace(partial_file, target)


def _video_paths(folder: Path, spec: SetSpec, count: int) -> list[tuple[str, int]]:
    """(path relative to `folder`, label) of each video: classes take turns."""
    return [
        (f"videos/c{index % CLASSES}/{index:05d}{spec.suffix}", index % CLASSES)
        for index in range(count)
    ]


def ensure_set(
    spec: SetSpec,
    root: Path,
    *,
    count: int | None = None,
    workers: int | None = None,
    seed: int = 0,
) -> tuple[Path, float]:
    """The set's folder, written (in `workers` processes) unless there, and seconds spent writing.

    An interrupted run resumes: videos are written under a partial name and renamed when whole.
    """
    count = spec.count if count is None else count
    if count < CLASSES:
        raise ValueError(f"a set needs at least {CLASSES} videos (one per class), got {count}")
    folder = root / f"{spec.name}-{count}-seed{seed}"
    meta_file = folder / META_FILE
    if meta_file.is_file():
        return folder, 0.0
    started = time.perf_counter()
    videos = _video_paths(folder, spec, count)
    for label in range(CLASSES):
        (folder / "videos" / f"c{label}").mkdir(parents=True, exist_ok=True)
    todo = [
        (index, str(folder / path))
        for index, (path, _) in enumerate(videos)
        if not (folder / path).is_file()
    ]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(partial(_write_one, spec=spec, seed=seed), todo, chunksize=4))
    lines = [f"{path} c{label}" for path, label in videos]
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    for part in ("val", "test"):
        (folder / f"{part}.txt").write_text("\n".join(lines[:CLASSES]) + "\n")
    meta = {"spec": asdict(spec) | {"count": count}, "seed": seed}
    meta_file.write_text(json.dumps(meta) + "\n")
    return folder, time.perf_counter() - started
