"""A synthetic action set that only motion and temporal order can tell apart, in HMDB51's layout.

The videos are drawn by `synthetic_render` (time-reversed class pairs); this module writes a set
of them, with HMDB51's file names and split files, and recognises a set already written.

    generate_synthetic(out)  -> out/videos/<class>/<film>_<class>_syn_<n>.avi  (mpeg4 in AVI)
                                out/splits/<class>_test_split<s>.txt  ("<video>.avi <id>", s = 1..3)
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from convperceiver.config import SYNTHETIC_MINIMUMS, DataConfig
from convperceiver.data.synthetic_render import BACKGROUNDS, PAIRS, SYNTHETIC_CLASSES, render_video
from convperceiver.data.video_write import write_video
from convperceiver.errors import ConfigError, DatasetError

VERSION = 2  # bump when rendering changes, so a set drawn by older code is not taken for a new one
CLIPS_PER_FILM = 2  # like HMDB51, several clips share a source film, which splits keep on one side


def _video_name(class_name: str, pair: int, index: int, videos_per_class: int) -> str:
    """HMDB51's ``<film>_<class>_<tags>_<n>.avi``; the two classes of a pair share their films."""
    film = pair * math.ceil(videos_per_class / CLIPS_PER_FILM) + index // CLIPS_PER_FILM
    return f"film{film:03d}_{class_name}_syn_{index % CLIPS_PER_FILM}.avi"


def _split_ids(pair: int, videos_per_class: int, seed: int) -> dict[int, list[int]]:
    """Per split 1..3, the id of each video of a pair (1 train, 2 test, 0 unused).

    Whole films go to one side; as a video's reversed twin shares its film, no test video is a
    training video played backwards. Each split holds out another block of films.
    """
    films = math.ceil(videos_per_class / CLIPS_PER_FILM)
    order = np.random.default_rng((seed, 1, pair)).permutation(films)
    unused = films // 8  # HMDB51 leaves about 9% of each class unused
    test = max(1, round(0.3 * (films - unused)))
    ids = {}
    for split in (1, 2, 3):
        held_out = np.roll(order, -(split - 1) * (test + unused))
        side = np.ones(films, dtype=int)
        side[held_out[:test]] = 2
        side[held_out[test : test + unused]] = 0
        ids[split] = [int(side[index // CLIPS_PER_FILM]) for index in range(videos_per_class)]
    return ids


def _write_twins(job: tuple[int, int], *, root: Path, meta: dict) -> None:
    """Render one video of a pair's first class and write it forwards and backwards."""
    pair, index = job
    first = PAIRS[pair][0]
    video = render_video(
        first,
        seed=meta["seed"],
        index=index,
        frames=meta["frames"],
        size=meta["size"],
        background=meta["background"],
    )
    for class_name, frames in zip(PAIRS[pair][:2], (video, video[::-1]), strict=True):
        name = _video_name(class_name, pair, index, meta["videos_per_class"])
        write_video(root / "videos" / class_name / name, frames, meta["fps"])


def _write_set(root: Path, meta: dict, workers: int) -> None:
    classes, videos_per_class = meta["classes"], meta["videos_per_class"]
    for class_name in classes:
        (root / "videos" / class_name).mkdir(parents=True)
    jobs = [(pair, index) for pair in range(len(classes) // 2) for index in range(videos_per_class)]
    write = partial(_write_twins, root=root, meta=meta)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(write, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        for job in jobs:
            write(job)
    (root / "splits").mkdir()
    for pair in range(len(classes) // 2):
        for split, ids in _split_ids(pair, videos_per_class, meta["seed"]).items():
            for class_name in classes[2 * pair : 2 * pair + 2]:
                names = [
                    _video_name(class_name, pair, i, videos_per_class) for i in range(len(ids))
                ]
                # HMDB51's own files end their lines with a space; parsers must cope with it.
                lines = sorted(f"{name} {id_} \n" for name, id_ in zip(names, ids, strict=True))
                (root / "splits" / f"{class_name}_test_split{split}.txt").write_text("".join(lines))
    (root / "README.txt").write_text(_README.format(**meta, count=len(classes)))
    # Written last: a folder with meta.json is a complete set.
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


_README = """\
Synthetic action set in the HMDB51 layout, made by convperceiver.data.synthetic: {count} classes,
{videos_per_class} videos each of {frames} frames, {size}x{size} at {fps} fps, seed {seed},
{background} background.

videos/<class>/<film>_<class>_syn_<n>.avi  mpeg4 in AVI
splits/<class>_test_split<s>.txt           "<video>.avi <id>": 1 train, 2 test, 0 unused

Classes come in pairs whose second class is the first one's videos played backwards, so only
motion and temporal order tell them apart: never reverse time as an augmentation, and flip
horizontally only while swapping moving_left/moving_right and the two rotations. A film's
videos, and a video's reversed twin, are always on the same side of a split.
"""


def _is_done(out: Path, meta: dict) -> bool:
    """Whether ``out`` already holds this set; a DatasetError if it holds anything else."""
    advice = "choose another folder or delete it"
    try:
        found = json.loads((out / "meta.json").read_text())
    except FileNotFoundError:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise DatasetError(f"{out} exists and is not a synthetic set; {advice}") from None
        return False
    except (OSError, ValueError) as error:
        raise DatasetError(f"{out / 'meta.json'} cannot be read ({error}); {advice}") from error
    changed = [
        f"{key} {found.get(key)!r} there, {meta.get(key)!r} asked"
        for key in sorted(meta.keys() | found.keys())
        if found.get(key) != meta.get(key)
    ]
    if changed:
        raise DatasetError(
            f"{out} holds a synthetic set of other parameters ({'; '.join(changed)}); {advice}"
        )
    return True


def generate_synthetic(
    out: str | Path,
    *,
    classes: int = 10,
    videos_per_class: int = 40,
    frames: int = 48,
    size: int = 64,
    fps: float = 24.0,
    seed: int = 0,
    background: str = "plain",
    workers: int = 2,
) -> Path:
    """Write the first ``classes`` synthetic classes as an HMDB51-style set in ``out``; return it.

    Videos land in ``out/videos``, split files in ``out/splits``, ``workers`` processes encode.
    Idempotent: a set already there with the same parameters is kept. The set is written beside
    ``out`` and renamed into place at the end, so an interrupted run never leaves a set that looks
    complete.
    """
    if classes % 2 or not 2 <= classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(
            f"classes must be even (whole time-reversed pairs), from 2 to {len(SYNTHETIC_CLASSES)};"
            f" got {classes}"
        )
    meta = {
        "version": VERSION,
        "classes": SYNTHETIC_CLASSES[:classes],
        "videos_per_class": videos_per_class,
        "frames": frames,
        "size": size,
        "fps": float(fps),
        "seed": seed,
        "background": background,
    }
    for key, (low, why) in SYNTHETIC_MINIMUMS.items():
        if meta[key] < low:
            raise ValueError(f"{key} must be at least {low} ({why}), got {meta[key]}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if fps <= 0 or workers < 1:
        raise ValueError(f"fps must be positive and workers at least 1, got {fps} and {workers}")
    out = Path(out)
    if _is_done(out, meta):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        _write_set(staging, meta, workers)
        if out.exists():
            out.rmdir()  # empty, as _is_done checked
        staging.rename(out)
    except OSError:
        if not _is_done(out, meta):  # unless another process has just written the same set
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def synthesize(data: DataConfig, *, workers: int = 2) -> Path:
    """The set `data.synthetic` describes, written into `data.root` (`convperceiver data synth`)."""
    if data.dataset != "synthetic":
        raise ConfigError(
            f"data.dataset={data.dataset!r}: data synth writes the synthetic set only;"
            " set data.dataset=synthetic"
        )
    # SyntheticConfig's fields are generate_synthetic's keywords, one for one.
    return generate_synthetic(data.root, **dataclasses.asdict(data.synthetic), workers=workers)


def ensure_synthetic(data: DataConfig) -> None:
    """Generate the synthetic set into `data.root` unless it is there; other datasets: nothing."""
    if data.dataset == "synthetic":
        synthesize(data)
