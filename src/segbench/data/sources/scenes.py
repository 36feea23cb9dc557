"""The synthetic dataset's scenes: procedurally generated images with an exact label map and depth.

Each image is a textured, unevenly lit background with a random number of objects painted
over it in random order (so they occlude each other). An object's class decides its shape
and its texture, never its colour: colours are drawn from one distribution for every class
and the background, so a per-pixel colour rule cannot solve it. Sizes vary by about 4x,
the `pole` class is thin and rare (about 2% of pixels), and every image gets lighting
gradients, sensor noise and sometimes blur. The label map is the painted regions exactly.

Each scene also has an exact depth map in metres, consistent with its occlusions. The
background is a ground plane receding towards the top of the image (7 m at the bottom row to
12 m at the top, inverse depth linear in the row, as a fixed camera sees a flat floor).
Objects are fronto-parallel and stand on it: an object's depth is a little nearer than the
ground at its lowest row (so it is in front of all the ground it hides, and objects lower in
the frame are nearer, a cue a network can see). An object painted later covers the earlier
ones it overlaps, so it is made nearer than each of them (by at least 10%): the depth order
agrees with every occlusion drawn. A pixel's depth is that of the topmost thing painted there.
Depth comes from its own random stream (a child of the sample's seed), so images and masks
are the same with or without it.

Deterministic: a scene is a function of its random generator alone (segbench.data.sources.synthetic
seeds one per sample).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import DataError


@dataclass(frozen=True)
class ObjectClass:
    name: str
    max_count: int  # objects per image: uniform in [0, max_count]
    size: tuple[float, float]  # radius range as a fraction of min(height, width)
    shape: Callable[[np.ndarray, np.ndarray, float, np.random.Generator], np.ndarray]
    texture: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


# --- shapes: (u, v) are object-centred, rotated coordinates; r the object radius ----------

def _ellipse(u, v, r, rng):
    a, b = r, r * rng.uniform(0.55, 1.0)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _box(u, v, r, rng):
    return (np.abs(u) <= r) & (np.abs(v) <= r * rng.uniform(0.45, 1.0))


def _triangle(u, v, r, rng):
    inside = np.ones(u.shape, bool)
    for phi in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):
        inside &= u * np.cos(phi) + v * np.sin(phi) <= r * 0.55
    return inside


def _ring(u, v, r, rng):
    rho = np.hypot(u, v)
    return (rho <= r) & (rho >= r * rng.uniform(0.5, 0.68))


def _pole(u, v, r, rng):
    half_width = max(0.9, r * rng.uniform(0.09, 0.15))
    return (np.abs(u) <= half_width) & (np.abs(v) <= r * rng.uniform(1.6, 3.0))


def _cross(u, v, r, rng):
    t = r * rng.uniform(0.22, 0.32)
    return ((np.abs(u) <= t) & (np.abs(v) <= r)) | ((np.abs(v) <= t) & (np.abs(u) <= r))


def _blob(u, v, r, rng):
    phi = np.arctan2(v, u)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    edge = r * (1 + 0.28 * np.sin(3 * phi + p1) + 0.16 * np.sin(5 * phi + p2))
    return np.hypot(u, v) <= edge


# --- textures in [0, 1], in object coordinates so they rotate with the object -------------

def _dots(u, v, rng):
    p = rng.uniform(3.5, 4.5)
    return 0.5 + 0.5 * np.sin(2 * np.pi * u / p) * np.sin(2 * np.pi * v / p)


def _stripes(u, v, rng):
    return 0.5 + 0.5 * np.sin(2 * np.pi * u / rng.uniform(4.0, 5.5))


def _checker(u, v, rng):
    p = rng.uniform(2.8, 3.6)
    return ((np.floor(u / p) + np.floor(v / p)) % 2).astype(np.float64)


def _flat(u, v, rng):
    return np.full(u.shape, rng.uniform(0.75, 1.0))


def _fine_stripes(u, v, rng):
    return 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * v / rng.uniform(2.6, 3.2)))


def _speckle(u, v, rng):
    return rng.uniform(0.3, 1.0, u.shape)


OBJECT_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass("disk", 3, (0.12, 0.26), _ellipse, _dots),
    ObjectClass("box", 3, (0.10, 0.22), _box, _stripes),
    ObjectClass("triangle", 2, (0.16, 0.30), _triangle, _checker),
    ObjectClass("ring", 2, (0.14, 0.26), _ring, _flat),
    ObjectClass("pole", 3, (0.10, 0.16), _pole, _flat),
    ObjectClass("cross", 1, (0.10, 0.20), _cross, _fine_stripes),
    ObjectClass("blob", 1, (0.10, 0.20), _blob, _speckle),
)
MAX_CLASSES = len(OBJECT_CLASSES) + 1
COLOUR_FREEDOM = 0.35  # share of objects whose colour ignores their class


def class_names(num_classes: int) -> list[str]:
    if not 2 <= num_classes <= MAX_CLASSES:
        raise DataError(f"synthetic: num_classes {num_classes} not supported; expected 2..{MAX_CLASSES}")
    return ["background"] + [c.name for c in OBJECT_CLASSES[: num_classes - 1]]


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.08, 0.92, 3)


def _object_colour(rng: np.random.Generator, k: int) -> np.ndarray:
    """Each class leans towards its own hue, but a third of objects take any colour."""
    if rng.random() < COLOUR_FREEDOM:
        return _random_colour(rng)
    hue = (k / len(OBJECT_CLASSES) + rng.normal(0, 0.06)) % 1.0
    return np.asarray(colorsys.hsv_to_rgb(hue, rng.uniform(0.35, 0.9), rng.uniform(0.45, 0.95)))


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise: a coarse random grid, bilinearly upsampled to h x w."""
    grid = rng.uniform(0, 1, (cells + 1, cells + 1))
    ys, xs = np.linspace(0, cells, h), np.linspace(0, cells, w)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(1, int(round(2.5 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="edge")
        out = sum(t * np.take(padded, np.arange(i, i + out.shape[axis]), axis=axis) for i, t in enumerate(taps))
    return out


STANDING = (0.88, 0.96)  # an object's depth as a share of the ground's depth at its lowest row
OCCLUDER_GAP = 0.9  # an object is at most this share of the depth of any earlier object it overlaps
GROUND_DEPTH = (7.0, 12.0)  # metres: the ground at the bottom and at the top row (the same camera for every scene)


@dataclass(frozen=True, eq=False)
class Layer:
    """One painted object: its class index (as in the mask), its whole shape before
    anything later covered part of it (H x W bool), and its depth in metres."""

    class_index: int
    shape: np.ndarray
    depth: float


@dataclass(frozen=True, eq=False)
class Scene:
    image: np.ndarray  # H x W x 3 uint8
    mask: np.ndarray  # H x W uint8 class indices
    depth: np.ndarray  # H x W float32 metres, the topmost layer's (or the ground's) depth
    layers: tuple[Layer, ...]  # in paint order: each one covers the ones before it
    ground: np.ndarray  # H x W float32 metres: the ground plane, where nothing covered it


def _object_depths(rng: np.random.Generator, shapes: list[np.ndarray], ground: np.ndarray) -> list[float]:
    """Per shape in paint order: standing on the ground at its lowest row, then pulled in front of
    every earlier shape it overlaps (so each occlusion drawn has the occluder nearer)."""
    depths: list[float] = []
    for j, shape in enumerate(shapes):
        rows = np.flatnonzero(shape.any(axis=1))
        bottom = rows[-1] if len(rows) else ground.shape[0] - 1
        depth = float(ground[bottom, 0]) * rng.uniform(*STANDING)
        for i in range(j):
            if (shapes[i] & shape).any():
                depth = min(depth, depths[i] * OCCLUDER_GAP)
        depths.append(float(np.float32(depth)))
    return depths


def _ground_depth(height: int, width: int) -> np.ndarray:
    """A flat floor seen from above it: inverse depth linear in the row, far at the top."""
    near, far = GROUND_DEPTH
    t = np.linspace(0.0, 1.0, height)[:, None]  # 0 at the top row, 1 at the bottom
    inverse = 1.0 / far + (1.0 / near - 1.0 / far) * t
    return np.broadcast_to(1.0 / inverse, (height, width))


def generate_scene(rng: np.random.Generator, height: int, width: int, num_classes: int) -> Scene:
    """One scene: image, mask, depth and the painted layers. Depth draws come from a child of
    `rng`'s seed, never from `rng` itself, so image and mask do not depend on them."""
    depth_rng = rng.spawn(1)[0]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    scale = min(height, width)
    mask = np.zeros((height, width), np.uint8)
    image = _random_colour(rng) * (0.6 + 0.4 * _value_noise(rng, height, width, int(rng.integers(2, 6))))[..., None]

    objects = [k for k, cls in enumerate(OBJECT_CLASSES[: num_classes - 1]) for _ in range(rng.integers(0, cls.max_count + 1))]
    rng.shuffle(objects)
    shapes = []
    for k in objects:
        cls = OBJECT_CLASSES[k]
        r = rng.uniform(*cls.size) * scale
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        theta = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        inside = cls.shape(u, v, r, rng)
        shade = 0.4 + 0.6 * cls.texture(u, v, rng)
        image[inside] = _object_colour(rng, k) * shade[inside][:, None]
        mask[inside] = k + 1
        shapes.append(inside)

    gradient = rng.uniform(0.65, 1.0) + rng.uniform(-0.35, 0.35) * ((xx / width - 0.5) * np.cos(theta_l := rng.uniform(0, 2 * np.pi)) + (yy / height - 0.5) * np.sin(theta_l))
    image = image * gradient[..., None]
    if rng.random() < 0.3:
        image = _blur(image, rng.uniform(0.4, 0.7))
    image = image + rng.normal(0, rng.uniform(0.01, 0.04), image.shape)

    ground = _ground_depth(height, width).astype(np.float32)
    layers = tuple(Layer(k + 1, inside, d) for k, inside, d in zip(objects, shapes, _object_depths(depth_rng, shapes, ground)))
    depth = ground.copy()
    for layer in layers:
        depth[layer.shape] = layer.depth
    image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return Scene(image=image, mask=mask, depth=depth, layers=layers, ground=ground)
