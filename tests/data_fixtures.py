"""Tiny real videos and dataset trees for the data tests, written with `write_video`.

Helpers, not fixtures: each test module wraps the ones it needs in a fixture of its own scope.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from convperceiver.data.video_write import write_video

# The repository's parent holds shared/, here and in a fresh clone beside it.
SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def shared_videos() -> list[Path]:
    """The real clips of shared/data/videos; skips the calling test where they are absent."""
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"the shared test clips are not at {SHARED_VIDEOS}")
    return sorted(p for p in SHARED_VIDEOS.iterdir() if p.suffix in {".mp4", ".avi"})


def moving_frames(num_frames: int, height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): a bright square crossing a still gradient."""
    rows, columns = np.mgrid[0:height, 0:width]
    blue = np.full_like(rows, np.random.default_rng(seed).integers(0, 200))
    background = np.stack([columns * 200 // width, rows * 200 // height, blue], -1).astype(np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    side = max(4, min(height, width) // 4)
    for t in range(num_frames):
        x, y = (3 * t) % (width - side), (2 * t) % (height - side)
        frames[t, y : y + side, x : x + side] = (255, (40 + 9 * t) % 256, 60)
    return frames


def write_tiny(
    path: Path, *, num_frames: int = 40, height: int = 48, width: int = 64, fps: float = 25.0, **kw
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, moving_frames(num_frames, height, width), fps, **kw)
    return path


def write_hostile(folder: Path) -> dict[str, Path]:
    """Files a real dataset holds now and then, by what is wrong with them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "zero_bytes": folder / "zero_bytes.avi",
        "text": folder / "text.avi",
        "truncated_mp4": folder / "truncated.mp4",
        "truncated_avi": folder / "truncated.avi",
        "no_frames": folder / "no_frames.avi",
        "no_video_stream": folder / "no_video_stream.mp4",
        "one_frame": write_tiny(folder / "one_frame.avi", num_frames=1),
        "grayscale": write_tiny(
            folder / "grayscale.mkv", num_frames=24, fps=10, codec="ffv1", pixel_format="gray"
        ),
        "odd_size": write_tiny(folder / "odd_size.avi", num_frames=24, height=61, width=97, fps=10),
    }
    files["zero_bytes"].write_bytes(b"")
    files["text"].write_text("this is not a video\n")
    whole = write_tiny(folder / "whole.mp4", num_frames=40, codec="libx264")
    files["truncated_mp4"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    # AVI needs no index to open, so a cut-off one opens and its frames end early.
    whole = write_tiny(folder / "whole.avi", num_frames=40, fps=5)
    files["truncated_avi"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    write_video(files["no_frames"], np.zeros((0, 32, 32, 3), np.uint8), 25)
    write_video(files["no_video_stream"], np.zeros((0, 32, 32, 3), np.uint8), 25)
    return files


def overstate_avi_length(path: Path, frames: int) -> None:
    """Patch an AVI's header frame counts (avih dwTotalFrames, strh dwLength) to `frames`."""
    data = bytearray(path.read_bytes())
    total_frames = data.index(b"avih") + 8 + 16  # after the chunk id and size, the 5th field
    length = data.index(b"strh") + 8 + 32  # the 9th field of the stream header
    for offset in (total_frames, length):
        struct.pack_into("<I", data, offset, frames)
    path.write_bytes(bytes(data))


def write_overstated(folder: Path) -> dict[str, Path]:
    """4 s videos whose headers promise more than their frames deliver, by how that happened.

    cut_mp4: a web-style MP4 (index first) cut mid-download; cut_avi: an AVI cut mid-stream;
    overstated_avi: a whole AVI whose header says 16 s.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.{name[-3:]}" for name in ("cut_mp4", "cut_avi")}
    web = write_tiny(
        folder / "web.mp4", num_frames=100, codec="libx264", options={"movflags": "faststart"}
    )
    files["cut_mp4"].write_bytes(web.read_bytes()[: web.stat().st_size // 2])
    whole = write_tiny(folder / "whole.avi", num_frames=100)
    files["cut_avi"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    files["overstated_avi"] = shutil.copyfile(whole, folder / "overstated.avi")
    overstate_avi_length(files["overstated_avi"], 400)
    return files


HMDB51_CLASSES = ("brush_hair", "kick_ball", "wave")
HMDB51_FILMS = ("April_09", "Catch_Me", "Hitch", "Matrix")


def hmdb51_name(film: str, class_name: str, n: int) -> str:
    return f"{film}_{class_name}_u_nm_np1_fr_med_{n}.avi"


def split_id(film_index: int, split: int) -> int:
    """Films rotate through test (2), train (1, twice) and unused (0) from split to split."""
    return (2, 1, 1, 0)[(film_index + split) % 4]


def write_hmdb51(root: Path, video: Path) -> tuple[Path, Path]:
    """`root/videos/<class>/<film>_<class>_..._<n>.avi` (2 per film) and 3 official splits."""
    videos, splits = root / "videos", root / "splits"
    splits.mkdir(parents=True)
    for class_name in HMDB51_CLASSES:
        (videos / class_name).mkdir(parents=True)
        for s in (1, 2, 3):
            lines = []
            for f, film in enumerate(HMDB51_FILMS):
                for n in (0, 1):
                    name = hmdb51_name(film, class_name, n)
                    shutil.copyfile(video, videos / class_name / name)
                    lines.append(f"{name} {split_id(f, s)} \n")
            (splits / f"{class_name}_test_split{s}.txt").write_text("".join(lines))
    return videos, splits


UCF101_CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "YoYo")


def write_ucf101(root: Path, video: Path) -> tuple[Path, Path]:
    """UCF101's layout: groups 1-2 test and 3-4 train in split 1, with the HandStand case."""
    videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text(
        "".join(f"{i} {name}\r\n" for i, name in enumerate(UCF101_CLASSES, start=1))
    )
    train, test = [], []
    for label, folder in enumerate(UCF101_CLASSES, start=1):
        in_name = "HandStandPushups" if folder == "HandstandPushups" else folder
        (videos / folder).mkdir(parents=True)
        for group in (1, 2, 3, 4):
            for clip in (1, 2):
                name = f"{folder}/v_{in_name}_g{group:02d}_c{clip:02d}.avi"
                shutil.copyfile(video, videos / name)
                if group <= 2:
                    test.append(f"{name}\r\n")
                else:
                    train.append(f"{name} {label}\r\n")
    (lists / "trainlist01.txt").write_text("".join(train))
    (lists / "testlist01.txt").write_text("".join(test))
    return videos, lists
