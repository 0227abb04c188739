"""The generated `shapes` source: RGB images of five shape classes, no download needed.

Each image is one shape (circle, square, triangle, star, cross) with a random fill colour,
size, position and rotation on a random two-colour gradient background, plus Gaussian pixel
noise. Colour never tells the class (fill and background are drawn the same way for every
class, kept apart in brightness so the shape stays visible in grayscale too), so a model has
to learn the outline. Shapes span 56-90% of the side (circumradius 0.28-0.45 of it: at 32
pixels the smallest is still about 18 pixels across) and the background's two colours are
close (each channel within 0.3 of the other), so that a small network learns the set from
2,000 images in a few CPU minutes; the outline is still the only cue. Every image's
parameters come from the seed and its index alone: the same seed gives the same images,
whatever order or chunk they are rendered in.
Shapes are drawn as anti-aliased masks from a "gauge" per class (< 1 inside, 1 on the edge).
"""

from __future__ import annotations

import numpy as np

from training_service.data.info import DatasetError
from training_service.data.sources import ImageSource, check_image_options

SHAPE_CLASSES = ["circle", "cross", "square", "star", "triangle"]
DEFAULT_SHAPES_SIZE = 32
_BATCH = 256  # images rendered together (bounds the float32 temporaries)
_LUMA = np.array([0.299, 0.587, 0.114])


def _gauge(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Homogeneous gauge of a shape of circumradius about 1 in its own (u, v) frame."""
    if kind == "circle":
        return np.sqrt(u * u + v * v) / 0.85
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) / 0.75
    if kind == "triangle":  # equilateral, inradius 0.575, one vertex up
        s, c = np.sin(np.pi / 6), np.cos(np.pi / 6)
        faces = np.maximum(np.maximum(-v, c * u + s * v), -c * u + s * v)
        return faces / 0.575
    if kind == "star":  # five points at radius 1.1, straight edges to inner corners at 0.45
        rho = np.sqrt(u * u + v * v)
        step = np.pi / 5  # a point to the next inner corner
        phase = np.abs(((np.arctan2(v, u) - np.pi / 2) / (2 * step) + 0.5) % 1.0 - 0.5) * 2
        off = phase * step  # angle from the nearest point, 0..step
        return rho * (np.sin(step - off) / 1.1 + np.sin(off) / 0.45) / np.sin(step)
    if kind == "cross":  # two bars, half-width 0.3, half-length 1
        vertical = np.maximum(np.abs(u) / 0.3, np.abs(v))
        horizontal = np.maximum(np.abs(u), np.abs(v) / 0.3)
        return np.minimum(vertical, horizontal)
    raise ValueError(kind)


class ShapesParameters:
    """Every image's label and drawing parameters, drawn once from the seed."""

    def __init__(self, count: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x5A9E])
        k = len(SHAPE_CLASSES)
        self.seed = seed
        self.labels = rng.permutation(np.arange(count) % k).astype(np.int64)
        self.radius = rng.uniform(0.28, 0.45, count)  # fraction of the side
        self.cx = rng.uniform(0.0, 1.0, count) * (1 - 2 * self.radius) + self.radius
        self.cy = rng.uniform(0.0, 1.0, count) * (1 - 2 * self.radius) + self.radius
        self.angle = rng.uniform(0.0, 2 * np.pi, count)
        self.noise = rng.uniform(0.02, 0.06, count)
        self.slope = rng.uniform(0.0, 2 * np.pi, count)
        start = rng.uniform(0.0, 1.0, (count, 3))
        end = np.clip(start + rng.uniform(-0.3, 0.3, (count, 3)), 0.0, 1.0)
        background = np.stack([start, end], axis=1)  # (count, 2, 3): a gentle gradient
        fill = rng.uniform(0.0, 1.0, (count, 3))
        # Keep fill and background apart in brightness: shift the fill away from the
        # background's mean luma by at least 0.25 (reflecting inside 0..1).
        bg_luma = background.mean(axis=1) @ _LUMA
        gap = fill @ _LUMA - bg_luma
        need = np.where(np.abs(gap) < 0.25, np.sign(gap + 1e-9) * 0.25 - gap, 0.0)
        shifted = fill + need[:, None]
        flip = (shifted.max(axis=1) > 1.0) | (shifted.min(axis=1) < 0.0)
        shifted[flip] = fill[flip] - (np.sign(gap[flip] + 1e-9) * 0.25 + gap[flip])[:, None]
        self.fill = np.clip(shifted, 0.0, 1.0)
        self.background = background

    def render(self, indices: np.ndarray, size: int, channels: int) -> np.ndarray:
        out = np.empty((len(indices), channels, size, size), dtype=np.uint8)
        for start in range(0, len(indices), _BATCH):
            part = np.asarray(indices[start : start + _BATCH])
            out[start : start + len(part)] = self._render_batch(part, size, channels)
        return out

    def _render_batch(self, idx: np.ndarray, size: int, channels: int) -> np.ndarray:
        grid = (np.arange(size, dtype=np.float32) + 0.5) / size
        x, y = grid[None, None, :], grid[None, :, None]
        col = lambda a: a[idx].astype(np.float32)[:, None, None]  # noqa: E731
        dx, dy = x - col(self.cx), y - col(self.cy)
        cos, sin, radius = col(np.cos(self.angle)), col(np.sin(self.angle)), col(self.radius)
        u = (cos * dx + sin * dy) / radius
        v = (cos * dy - sin * dx) / radius
        gauge = np.empty((len(idx), size, size), dtype=np.float32)
        labels = self.labels[idx]
        for k, kind in enumerate(SHAPE_CLASSES):
            rows = labels == k
            if rows.any():
                gauge[rows] = _gauge(kind, u[rows], v[rows])
        # About one pixel of anti-aliasing along the edge.
        alpha = np.clip(0.5 + (1.0 - gauge) * radius * size, 0.0, 1.0)[:, None]
        t = 0.5 + (x - 0.5) * col(np.cos(self.slope)) + (y - 0.5) * col(np.sin(self.slope))
        t = np.clip(t, 0.0, 1.0)[:, None]
        bg = self.background[idx].astype(np.float32)
        back = bg[:, 0, :, None, None] * (1 - t) + bg[:, 1, :, None, None] * t
        image = back + (self.fill[idx].astype(np.float32)[:, :, None, None] - back) * alpha
        if channels == 1:  # Pillow's "L" weights
            image = np.tensordot(_LUMA.astype(np.float32), image, axes=([0], [1]))[:, None]
        for row, i in enumerate(idx.tolist()):
            noise_rng = np.random.default_rng([self.seed, 0x7013, i])
            sample = noise_rng.standard_normal(image.shape[1:], dtype=np.float32)
            image[row] += sample * np.float32(self.noise[i])
        return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def shapes_source(
    count: int | None, image_size: int | None, channels: int | None, seed: int
) -> ImageSource:
    check_image_options(image_size, channels)
    count = 2000 if count is None else count
    if count < 2 * len(SHAPE_CLASSES):
        raise DatasetError(f"count {count} is too small: shapes needs at least 10 images")
    size = DEFAULT_SHAPES_SIZE if image_size is None else image_size
    depth = 3 if channels is None else channels
    params = ShapesParameters(count, seed)
    return ImageSource(
        classes=list(SHAPE_CLASSES),
        labels=params.labels,
        image_size=size,
        channels=depth,
        render=lambda indices: params.render(indices, size, depth),
    )
