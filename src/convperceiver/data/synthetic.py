"""A synthetic action set that only motion and temporal order can tell apart, in HMDB51's layout.

Classes come in pairs whose second class is, video for video, the first one played backwards: a
single frame has the same distribution in both, so only the order of frames gives the label away.
Shapes, colours, sizes, speeds and 1-2 distractors moving in random directions are drawn per
video, from a generator seeded by (seed, pair, video index). The background is plain mid-grey, or
``textured`` (a random gradient plus low-frequency noise): a much harder set, which small models
trained from scratch barely learn in a few thousand steps.

    render_video(...)        -> uint8 frames (T, size, size, 3)
    generate_synthetic(out)  -> out/videos/<class>/<film>_<class>_syn_<n>.avi  (mpeg4 in AVI)
                                out/splits/<class>_test_split<s>.txt  ("<video>.avi <id>", s = 1..3)
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from convperceiver.data.video import write_video
from convperceiver.errors import DatasetError

VERSION = 2  # bump when rendering changes, so a set drawn by older code is not taken for a new one
CLIPS_PER_FILM = 2  # like HMDB51, several clips share a source film, which splits keep on one side
EVENT_A_END, EVENT_B_START = 0.55, 0.45  # any window of 60% of a video sees A alone, then B alone


@dataclass(frozen=True)
class Layer:
    """One shape and its path; the per-frame fields hold one value per frame."""

    sides: int  # 0 draws a circle (an ellipse when aspect != 1)
    aspect: float  # width over height along the shape's own axes
    colour: np.ndarray  # (3,) RGB in [0, 1]
    centre: np.ndarray  # (T, 2) x, y in pixels
    radius: np.ndarray  # (T,) pixels
    angle: np.ndarray  # (T,) radians; increasing turns clockwise on screen, as y points down
    opacity: np.ndarray  # (T,) in [0, 1]


@dataclass(frozen=True)
class Scene:
    """All one video shows: a still background, distractors, and the actors that carry the label."""

    background: np.ndarray  # (H, W, 3) in [0, 1]
    distractors: list[Layer]  # drawn first, so they never hide the label
    actors: list[Layer]


@dataclass(frozen=True)
class _Canvas:
    """What every shape is drawn from: the random stream, frame times in [0, 1], the frame size."""

    rng: np.random.Generator
    t: np.ndarray  # (T,)
    size: int
    ground: np.ndarray  # (3,) mean background colour

    def colour(self, *avoid: np.ndarray) -> np.ndarray:
        """A random colour that stands out from the background and from ``avoid``."""
        while True:
            colour = self.rng.uniform(0.0, 1.0, 3)
            if all(np.linalg.norm(colour - other) > 0.45 for other in (self.ground, *avoid)):
                return colour

    def layer(
        self, *, centre, radius, sides=None, colour=None, angle=None, opacity=1.0, aspect=1.0
    ):
        """A layer; constants become per-frame arrays, and what is not given is drawn at random."""
        ones = np.ones_like(self.t)
        return Layer(
            sides=int(self.rng.choice([0, 3, 4, 5, 6])) if sides is None else sides,
            aspect=aspect,
            colour=self.colour() if colour is None else colour,
            centre=np.broadcast_to(np.asarray(centre, dtype=float), (len(self.t), 2)),
            radius=radius * ones,
            angle=(self.rng.uniform(0, 2 * np.pi) if angle is None else angle) * ones,
            opacity=opacity * ones,
        )


def _translate(c: _Canvas, *, axis: int) -> list[Layer]:
    """moving_left (axis 0) or moving_up (axis 1): a shape crosses the frame at a constant speed."""
    radius = c.rng.uniform(0.09, 0.14) * c.size
    distance = c.rng.uniform(0.35, 0.65) * c.size
    centre = np.empty((len(c.t), 2))
    centre[:, axis] = c.rng.uniform(radius + distance, c.size - radius) - distance * c.t
    centre[:, 1 - axis] = c.rng.uniform(radius, c.size - radius)
    return [c.layer(centre=centre, radius=radius)]


def _grow(c: _Canvas) -> list[Layer]:
    start, end = c.rng.uniform(0.05, 0.08) * c.size, c.rng.uniform(0.25, 0.35) * c.size
    return [c.layer(centre=c.rng.uniform(end, c.size - end, 2), radius=start + (end - start) * c.t)]


def _rotate(c: _Canvas) -> list[Layer]:
    """An elongated body with a marker near one end, so every shape shows which way it turns."""
    radius, aspect = c.rng.uniform(0.16, 0.2) * c.size, 1.5
    centre = c.rng.uniform(radius * aspect, c.size - radius * aspect, 2)
    # Under a turn per video, so a 60% window never comes back to where it started.
    angle = c.rng.uniform(0, 2 * np.pi) + c.rng.uniform(0.5, 0.9) * 2 * np.pi * c.t
    body = c.layer(centre=centre, radius=radius, angle=angle, aspect=aspect)
    tip = 0.65 * radius * aspect * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    marker = c.layer(
        centre=centre + tip, radius=0.35 * radius, sides=0, colour=c.colour(body.colour)
    )
    return [body, marker]


def _a_then_b(c: _Canvas) -> list[Layer]:
    """Event A (a circle) fills the first 55% of the video, event B (a square) the last 55%."""
    layers = []
    for sides, opacity in [(0, c.t <= EVENT_A_END), (4, c.t >= EVENT_B_START)]:
        radius = c.rng.uniform(0.12, 0.2) * c.size
        centre = c.rng.uniform(radius, c.size - radius, 2)
        layers.append(c.layer(centre=centre, radius=radius, sides=sides, opacity=opacity))
    return layers


def _fade(c: _Canvas) -> list[Layer]:
    radius = c.rng.uniform(0.15, 0.25) * c.size
    return [c.layer(centre=c.rng.uniform(radius, c.size - radius, 2), radius=radius, opacity=c.t)]


def _split(c: _Canvas) -> list[Layer]:
    """One shape parts into two that move apart in opposite directions."""
    radius = c.rng.uniform(0.1, 0.14) * c.size
    heading = c.rng.uniform(0, 2 * np.pi)
    half = 0.5 * c.rng.uniform(0.4, 0.6) * c.size * np.array([np.cos(heading), np.sin(heading)])
    centre = c.rng.uniform(radius + np.abs(half), c.size - radius - np.abs(half))
    twin = c.layer(centre=centre, radius=radius)
    offset = c.t[:, None] * half  # (T, 2)
    return [replace(twin, centre=centre + offset), replace(twin, centre=centre - offset)]


def _distractor(c: _Canvas) -> Layer:
    """A small shape bouncing in a random direction, spinning either way: it hints at no class."""
    radius = c.rng.uniform(0.05, 0.08) * c.size
    heading = c.rng.uniform(0, 2 * np.pi)
    velocity = c.rng.uniform(0.3, 0.8) * c.size * np.array([np.cos(heading), np.sin(heading)])
    path = c.rng.uniform(radius, c.size - radius, 2) + c.t[:, None] * velocity - radius
    span = c.size - 2 * radius
    bounced = radius + span - np.abs(np.mod(path, 2 * span) - span)  # reflect off the edges
    spin = c.rng.uniform(-1.0, 1.0) * 2 * np.pi * c.t
    return c.layer(centre=bounced, radius=radius, angle=c.rng.uniform(0, 2 * np.pi) + spin)


BACKGROUNDS = ("plain", "textured")


def _background(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """The still background, (size, size, 3) in [0, 1]; ``textured`` draws from ``rng``."""
    if kind == "plain":
        return np.full((size, size, 3), 0.5)
    return _textured(rng, size)


def _textured(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gradient plus low-frequency noise: texture, cheap to encode."""
    grid = np.linspace(-1.0, 1.0, size)
    heading = rng.uniform(0, 2 * np.pi)
    ramp = 0.5 + 0.35 * (np.cos(heading) * grid[None, :] + np.sin(heading) * grid[:, None])
    low, high = rng.uniform(0.15, 0.85, (2, 3))
    coarse = rng.normal(0.0, 0.1, (*[int(rng.integers(3, 6))] * 2, 3))
    return np.clip(low + (high - low) * ramp[..., None] + _upsample(coarse, size), 0.0, 1.0)


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """Smoothstep interpolation of a small (n, n, 3) grid to (size, size, 3)."""
    position = np.linspace(0, len(coarse) - 1, size)
    index = np.minimum(position.astype(int), len(coarse) - 2)
    weight = position - index
    weight = weight * weight * (3 - 2 * weight)
    rows = coarse[index] * (1 - weight[:, None, None]) + coarse[index + 1] * weight[:, None, None]
    return rows[:, index] * (1 - weight[None, :, None]) + rows[:, index + 1] * weight[None, :, None]


def _extent(layer: Layer, size: int) -> tuple[slice, slice]:
    """The rows and columns a layer touches in any frame: drawing skips the rest of the frame."""
    reach = (layer.radius * max(layer.aspect, 1.0) + 1)[:, None]  # (T, 1)
    low = np.clip(np.floor((layer.centre - reach).min(axis=0)), 0, size).astype(int)
    high = np.clip(np.ceil((layer.centre + reach).max(axis=0)), 0, size).astype(int)
    return slice(low[1], high[1]), slice(low[0], high[0])


def _coverage(layer: Layer, rows: slice, cols: slice) -> np.ndarray:
    """How much of each pixel the shape covers, (T, rows, cols) in [0, 1], with a soft edge."""
    x = np.arange(cols.start, cols.stop) + 0.5  # pixel centres
    y = np.arange(rows.start, rows.stop) + 0.5
    dx = x[None, None, :] - layer.centre[:, 0, None, None]  # (T, 1, cols)
    dy = y[None, :, None] - layer.centre[:, 1, None, None]  # (T, rows, 1)
    cos, sin = np.cos(layer.angle)[:, None, None], np.sin(layer.angle)[:, None, None]
    along = (cos * dx + sin * dy) / layer.aspect  # (T, rows, cols) in the shape's own axes
    across = cos * dy - sin * dx
    radius = layer.radius[:, None, None]
    if layer.sides == 0:
        return np.clip(0.5 + radius - np.hypot(along, across), 0.0, 1.0)
    normals = 2 * np.pi * (np.arange(layer.sides) + 0.5) / layer.sides
    outside = np.max([np.cos(n) * along + np.sin(n) * across for n in normals], axis=0)
    return np.clip(0.5 + radius * np.cos(np.pi / layer.sides) - outside, 0.0, 1.0)


def _draw(scene: Scene, size: int) -> np.ndarray:
    """Composite the layers over the background: uint8 frames (T, size, size, 3)."""
    frames = len(scene.actors[0].opacity)
    video = np.repeat(scene.background[None], frames, axis=0)  # (T, H, W, 3)
    for layer in scene.distractors + scene.actors:
        rows, cols = _extent(layer, size)
        alpha = _coverage(layer, rows, cols) * layer.opacity[:, None, None]
        region = video[:, rows, cols]  # a view: compositing writes into the video
        region += alpha[..., None] * (layer.colour - region)
    return (video * 255 + 0.5).astype(np.uint8)


# Each pair: its first class, that class played backwards, and the actors of the first class.
_PAIRS: list[tuple[str, str, Callable[[_Canvas], list[Layer]]]] = [
    ("moving_left", "moving_right", partial(_translate, axis=0)),
    ("moving_up", "moving_down", partial(_translate, axis=1)),
    ("growing", "shrinking", _grow),
    ("rotating_clockwise", "rotating_anticlockwise", _rotate),
    ("a_then_b", "b_then_a", _a_then_b),
    ("fading_in", "fading_out", _fade),
    ("splitting", "merging", _split),
]
SYNTHETIC_CLASSES: list[str] = [name for first, second, _ in _PAIRS for name in (first, second)]
_FLIPPED = {"moving_left": "moving_right", "rotating_clockwise": "rotating_anticlockwise"}
# The class of a horizontally flipped video, so that a flip augmentation keeps labels right.
MIRRORED: dict[str, str] = (
    {name: name for name in SYNTHETIC_CLASSES} | _FLIPPED | {v: k for k, v in _FLIPPED.items()}
)


def _sample_scene(
    pair: int, *, seed: int, index: int, frames: int, size: int, background: str
) -> Scene:
    """The scene of a pair's first class; the order of the draws fixes what a seed gives."""
    rng = np.random.default_rng((seed, 0, pair, index))
    background = _background(rng, size, background)
    canvas = _Canvas(rng, np.linspace(0.0, 1.0, frames), size, background.mean(axis=(0, 1)))
    distractors = [_distractor(canvas) for _ in range(int(rng.integers(1, 3)))]
    return Scene(background, distractors, _PAIRS[pair][2](canvas))


def render_video(
    class_name: str, *, seed: int, index: int, frames: int, size: int, background: str = "plain"
) -> np.ndarray:
    """Video ``index`` of a class as uint8 frames (frames, size, size, 3), the same for a seed.

    The second class of a pair gets the first class's video of the same seed and index, reversed.
    """
    if class_name not in SYNTHETIC_CLASSES:
        raise ValueError(f"unknown synthetic class {class_name!r}; choose from {SYNTHETIC_CLASSES}")
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; choose from {BACKGROUNDS}")
    pair, backwards = divmod(SYNTHETIC_CLASSES.index(class_name), 2)
    scene = _sample_scene(
        pair, seed=seed, index=index, frames=frames, size=size, background=background
    )
    video = _draw(scene, size)
    return np.ascontiguousarray(video[::-1]) if backwards else video


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
    first = _PAIRS[pair][0]
    video = render_video(
        first,
        seed=meta["seed"],
        index=index,
        frames=meta["frames"],
        size=meta["size"],
        background=meta["background"],
    )
    for class_name, frames in zip(_PAIRS[pair][:2], (video, video[::-1]), strict=True):
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
    # Three videos make two films, so every split has a training and a test film.
    for key, low in {"videos_per_class": 3, "frames": 2, "size": 16, "seed": 0}.items():
        if meta[key] < low:
            raise ValueError(f"{key} must be at least {low}, got {meta[key]}")
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
