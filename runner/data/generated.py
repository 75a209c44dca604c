"""Image datasets generated from the seed, for CNN experiments (and benchmarks) without files."""
from __future__ import annotations

import numpy as np
import torch

from optlab.data._base import DATASETS, DatasetSpec, Pool, n_samples_key, noise_key
from optlab.registry import Check, Key, at_least


def shape_masks(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    """One boolean mask per shape class, from pixel offsets to each image's centre and its radius."""
    dist = np.sqrt(dx**2 + dy**2)
    bar = r / 3
    return [
        dist <= r,                                                               # 0 disc
        np.maximum(np.abs(dx), np.abs(dy)) <= r,                                 # 1 square
        np.abs(dx) + np.abs(dy) <= r,                                            # 2 diamond
        ((np.abs(dx) <= bar) & (np.abs(dy) <= r)) | ((np.abs(dy) <= bar) & (np.abs(dx) <= r)),  # 3 cross
        (dist <= r) & (dist >= r / 2),                                           # 4 ring
    ]


SHAPE_CLASSES = 5


def load_shapes(cfg: dict, seed: int) -> Pool:
    """size x size RGB images of one shape (its class) at a random place, size and colour,
    on a random background colour with Gaussian pixel noise."""
    n, classes = int(cfg["n_samples"]), int(cfg["classes"])
    size, noise = int(cfg["size"]), float(cfg["noise"])
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    r = rng.uniform(size / 8, size / 4, (n, 1, 1))
    cx, cy = (rng.uniform(r, size - 1 - r) for _ in range(2))
    grid = np.arange(size, dtype=np.float64)
    dx, dy = grid[None, None, :] - cx, grid[None, :, None] - cy            # (n, size, size)
    mask = np.choose(labels[:, None, None], shape_masks(dx, dy, r))
    background, colour = rng.uniform(0, 1, (n, 3, 1, 1)), rng.uniform(0, 1, (n, 3, 1, 1))
    images = np.where(mask[:, None], colour, background) + rng.normal(0, noise, (n, 3, size, size))
    return Pool(torch.from_numpy(images.astype(np.float32)), torch.from_numpy(labels.astype(np.int64)))


DATASETS.add(DatasetSpec(
    name="shapes", load=load_shapes, images=True,
    keys=(n_samples_key(5000), Key("classes", SHAPE_CLASSES, Check(lambda v: 2 <= v <= SHAPE_CLASSES, "in [2, 5]")),
          Key("size", 32, at_least(8)), noise_key(0.1)),
    description="Generated 32x32 colour images of shapes (disc, square, diamond, cross, ring) at random places, "
                "sizes and colours on noisy backgrounds; the class is the shape. Needs no files."))
