"""What one synthetic video shows: shapes that move, turn, grow, fade or split, drawn per frame.

Classes come in pairs whose second class is, video for video, the first one played backwards: a
single frame has the same distribution in both, so only the order of frames gives the label away.
Shapes, colours, sizes, speeds and 1-2 distractors moving in random directions are drawn per
video, from a generator seeded by (seed, pair, video index). The background is plain mid-grey, or
``textured`` (a random gradient plus low-frequency noise): a much harder set, which small models
trained from scratch barely learn in a few thousand steps.

    render_video(...) -> uint8 frames (T, size, size, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

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
PAIRS: list[tuple[str, str, Callable[[_Canvas], list[Layer]]]] = [
    ("moving_left", "moving_right", partial(_translate, axis=0)),
    ("moving_up", "moving_down", partial(_translate, axis=1)),
    ("growing", "shrinking", _grow),
    ("rotating_clockwise", "rotating_anticlockwise", _rotate),
    ("a_then_b", "b_then_a", _a_then_b),
    ("fading_in", "fading_out", _fade),
    ("splitting", "merging", _split),
]
SYNTHETIC_CLASSES: list[str] = [name for first, second, _ in PAIRS for name in (first, second)]
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
    return Scene(background, distractors, PAIRS[pair][2](canvas))


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
