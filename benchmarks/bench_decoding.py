"""Clips per second: seek-based `decode_clip` against a full decode, and decord where installed.

One clip = 16 frames from a random 2 s window, delivered as uint8 (16, 128, 171, 3), in one
process. Files: the shared real clips (where present) and a few synthetic ones written to a
temporary folder. Every method decodes the same windows; the ratio ours/full is per file,
then a geometric mean, all measured in the same run. Timings are printed, never asserted.

    python benchmarks/bench_decoding.py [--json] [--seconds 1.0] [--thread-type AUTO]
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from convperceiver.data import video_container
from convperceiver.data.video import decode_all_frames, decode_clip, probe_video
from convperceiver.data.video_write import write_video

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
SIZE = (128, 171)  # (height, width), the pretrained weights' resize
NUM_FRAMES, CLIP_S = 16, 2.0

Decoder = Callable[[Path, list[float]], np.ndarray]


def synthetic_files(folder: Path) -> list[Path]:
    """HMDB51-like AVIs (mpeg4, a key frame every 12 frames) and a 10 s h264 file."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)

    def frames(count: int) -> np.ndarray:
        out = np.repeat(texture[None] // 2, count, axis=0)
        for t in range(count):
            x, y = (4 * t) % 260, (3 * t) % 180
            out[t, y : y + 60, x : x + 60] = texture[:60, :60]  # a textured patch moving
        return out

    files = {
        "synthetic_mpeg4_320x240_30fps_3s.avi": (90, "mpeg4"),
        "synthetic_mpeg4_320x240_30fps_6s.avi": (180, "mpeg4"),
        "synthetic_h264_320x240_30fps_10s.mp4": (300, "libx264"),
    }
    for name, (count, codec) in files.items():
        write_video(folder / name, frames(count), 30, codec)
    return [folder / name for name in files]


def window(duration: float, rng: random.Random) -> list[float]:
    start = rng.uniform(0, max(duration - CLIP_S, 0))
    span = min(CLIP_S, duration)
    return [start + span * (i + 0.5) / NUM_FRAMES for i in range(NUM_FRAMES)]


def ours(path: Path, times: list[float]) -> np.ndarray:
    return decode_clip(path, times, size=SIZE).numpy()


def full(path: Path, times: list[float]) -> np.ndarray:
    frames, frame_times = decode_all_frames(path, size=SIZE)
    return frames[[max(0, bisect.bisect_right(frame_times, t) - 1) for t in times]].numpy()


def decord_decoder() -> Decoder | None:
    """decord as MMAction2 uses it: a reader per clip, frame indices from the average rate."""
    try:
        import decord
    except ImportError:
        return None

    def decode(path: Path, times: list[float]) -> np.ndarray:
        reader = decord.VideoReader(str(path), width=SIZE[1], height=SIZE[0], num_threads=1)
        last = len(reader) - 1
        indices = [min(max(int(t * reader.get_avg_fps()), 0), last) for t in times]
        return reader.get_batch(indices).asnumpy()

    return decode


def clips_per_second(
    decode: Decoder, path: Path, windows: list[list[float]], seconds: float
) -> float:
    """Decode windows in turn for at least `seconds` (and 3 clips); clips per second."""
    decode(path, windows[0])  # warm the file cache and the codec
    count, start = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - start < seconds:
        clip = decode(path, windows[count % len(windows)])
        assert clip.shape == (NUM_FRAMES, *SIZE, 3)
        count += 1
    return count / (time.perf_counter() - start)


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def measure(paths: list[Path], seconds: float) -> list[dict]:
    methods: dict[str, Decoder] = {"ours": ours, "full": full}
    if (decord := decord_decoder()) is not None:
        methods["decord"] = decord
    rows = []
    for path in paths:
        info = probe_video(path)
        rng = random.Random(path.name)
        windows = [window(info.duration, rng) for _ in range(32)]
        row = {
            "file": path.name,
            "duration_s": round(info.duration, 2),
            "size": f"{info.width}x{info.height}",
        }
        for name, decode in methods.items():
            row[name] = clips_per_second(decode, path, windows, seconds)
        row["ours/full"] = row["ours"] / row["full"]
        rows.append(row)
    return rows


def report(rows: list[dict]) -> dict:
    methods = [k for k in ("ours", "full", "decord") if k in rows[0]]
    summary = {f"{m}_geomean_clips_per_s": geometric_mean([r[m] for r in rows]) for m in methods}
    summary["ours/full_geomean"] = geometric_mean([r["ours/full"] for r in rows])
    long_rows = [r for r in rows if r["duration_s"] >= 9.5]
    if long_rows:
        summary["ours/full_geomean_10s_files"] = geometric_mean([r["ours/full"] for r in long_rows])
    return {"thread_type": video_container.THREAD_TYPE, "files": rows, "summary": summary}


def format_table(result: dict) -> str:
    rows = result["files"]
    methods = [k for k in ("ours", "full", "decord") if k in rows[0]]
    header = f"{'file':44} {'dur s':>6} {'size':>8} " + " ".join(f"{m:>8}" for m in methods)
    lines = [
        f"clips/s, {NUM_FRAMES} frames of a {CLIP_S:g} s window at {SIZE[0]}x{SIZE[1]}, "
        f"one process, PyAV threads {result['thread_type']}",
        header + f" {'ours/full':>9}",
    ]
    for r in rows:
        values = " ".join(f"{r[m]:8.1f}" for m in methods)
        lines.append(
            f"{r['file']:44} {r['duration_s']:6.2f} {r['size']:>8} {values} {r['ours/full']:8.2f}x"
        )
    for key, value in result["summary"].items():
        lines.append(f"{key}: {value:.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per file and method")
    parser.add_argument(
        "--thread-type",
        default=video_container.THREAD_TYPE,
        choices=["NONE", "SLICE", "FRAME", "AUTO"],
        help="PyAV decoder threading to measure (default: the library's)",
    )
    args = parser.parse_args(argv)
    video_container.THREAD_TYPE = args.thread_type
    shared = sorted(SHARED_VIDEOS.glob("*.mp4")) + sorted(SHARED_VIDEOS.glob("*.avi"))
    if not shared:
        print(
            f"no shared clips at {SHARED_VIDEOS}; measuring synthetic files only", file=sys.stderr
        )
    with tempfile.TemporaryDirectory() as folder:
        result = report(measure(shared + synthetic_files(Path(folder)), args.seconds))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
