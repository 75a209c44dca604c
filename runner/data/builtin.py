"""Datasets that ship with optlab's dependencies or are drawn from the seed: digits, moons,
spirals, linreg, blobs."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch

from optlab.data._base import (
    DATASETS,
    DatasetSpec,
    Pool,
    classes_key,
    n_samples_key,
    noise_key,
)
from optlab.errors import DataError
from optlab.registry import POSITIVE, Key, at_least


def sklearn_data_file(name: str) -> Path:
    """A data file shipped inside scikit-learn, found without importing it (which takes seconds)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("scikit-learn is not installed: it ships the digits data offline (pip install scikit-learn)")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        raise DataError(f"{path}: missing from the scikit-learn installation")
    return path


def load_digits(cfg: dict, seed: int) -> Pool:
    table = np.loadtxt(sklearn_data_file("digits.csv.gz"), delimiter=",", dtype=np.float32)
    x = torch.from_numpy(table[:, :-1].reshape(-1, 1, 8, 8).copy())  # (N, 1, 8, 8), values 0..16
    return Pool(x, torch.from_numpy(table[:, -1].astype(np.int64)))


def load_moons(cfg: dict, seed: int) -> Pool:
    """Two interleaving half circles with Gaussian noise (as scikit-learn's make_moons)."""
    n, noise = int(cfg["n_samples"]), float(cfg["noise"])
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    outer = np.linspace(0, math.pi, n_out)
    inner = np.linspace(0, math.pi, n_in)
    x = np.concatenate([np.stack([np.cos(outer), np.sin(outer)], 1),
                        np.stack([1 - np.cos(inner), 1 - np.sin(inner) - 0.5], 1)])
    x += rng.normal(0.0, noise, x.shape)
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return Pool(torch.tensor(x, dtype=torch.float32), torch.from_numpy(y))


def load_spirals(cfg: dict, seed: int) -> Pool:
    n, classes, noise = int(cfg["n_samples"]), int(cfg["classes"]), float(cfg["noise"])
    rng = np.random.default_rng(seed)
    per_class = n // classes
    xs, ys = [], []
    for k in range(classes):
        radius = np.linspace(0.05, 1.0, per_class)
        angle = np.linspace(0, 4.0, per_class) + 2 * math.pi * k / classes + rng.normal(0, noise, per_class)
        xs.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        ys.append(np.full(per_class, k))
    return Pool(torch.tensor(np.concatenate(xs), dtype=torch.float32),
                torch.tensor(np.concatenate(ys), dtype=torch.int64))


def load_linreg(cfg: dict, seed: int) -> Pool:
    """Least squares: y = X w* + noise, drawn from the seed. With `condition` 1 (the default)
    X ~ N(0, I) and w* ~ N(0, I); above 1, ill_conditioned's X and w*."""
    n, d, noise = int(cfg["n_samples"]), int(cfg["n_features"]), float(cfg["noise"])
    condition = float(cfg.get("condition", 1.0))
    rng = np.random.default_rng(seed)
    if condition == 1.0:
        x = rng.normal(size=(n, d))
        w_star = rng.normal(size=d)
    else:
        x, w_star, _, _ = ill_conditioned(rng, n, d, condition)
    y = x @ w_star + rng.normal(0.0, noise, n)
    return Pool(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), task="regression")


def ill_conditioned(rng, n: int, d: int, condition: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X, w*, lam, Q): X = Z diag(sqrt(lam)) Q^T with Z ~ N(0, I), Q a random rotation and the
    covariance's eigenvalues lam log-spaced from 1 down to 1 / condition; w* = Q diag(1 / sqrt(lam)) u
    with u ~ N(0, I), so that X w* = Z u: every eigen-direction carries the same share of the
    signal in expectation, and the slow, small-eigenvalue ones cannot be skipped."""
    lam = np.logspace(0.0, -np.log10(condition), d)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    x = rng.normal(size=(n, d)) * np.sqrt(lam) @ q.T
    w_star = q @ (rng.normal(size=d) / np.sqrt(lam))
    return x, w_star, lam, q


def load_blobs(cfg: dict, seed: int) -> Pool:
    """Isotropic Gaussian clusters, one per class, centers drawn uniformly in [-box, box]^d."""
    n, d, classes = int(cfg["n_samples"]), int(cfg["n_features"]), int(cfg["classes"])
    std, box = float(cfg["cluster_std"]), float(cfg["box"])
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-box, box, size=(classes, d))
    y = np.arange(n) % classes
    x = centers[y] + rng.normal(0.0, std, size=(n, d))
    return Pool(torch.tensor(x, dtype=torch.float32), torch.from_numpy(y.astype(np.int64)))


def n_features_key(default: int) -> Key:
    return Key("n_features", default, at_least(1))


DATASETS.add(DatasetSpec(
    name="digits", load=load_digits, images=True,
    description="scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), shipped offline."))
DATASETS.add(DatasetSpec(
    name="moons", load=load_moons, keys=(n_samples_key(1000), noise_key(0.2)),
    description="Two interleaving half circles with Gaussian noise (like scikit-learn's make_moons)."))
DATASETS.add(DatasetSpec(
    name="spirals", load=load_spirals, keys=(n_samples_key(1500), classes_key(3), noise_key(0.2)),
    description="Interleaved 2-D spirals, one arm per class: not linearly separable."))
DATASETS.add(DatasetSpec(
    name="linreg", load=load_linreg, regression=True,
    keys=(n_samples_key(1000), n_features_key(20), noise_key(0.1), Key("condition", 1.0, at_least(1))),
    description="A generated least-squares problem: y = X w* + noise, X ~ N(0, I), w* ~ N(0, I); reports MSE. "
                "condition > 1: X's covariance has eigenvalues log-spaced from 1 to 1/condition along a "
                "random rotation, each eigen-direction an equal share of y."))
DATASETS.add(DatasetSpec(
    name="blobs", load=load_blobs,
    keys=(n_samples_key(1000), n_features_key(2), classes_key(3), Key("cluster_std", 1.0, POSITIVE),
          Key("box", 5.0)),
    description="Isotropic Gaussian clusters, one per class (like scikit-learn's make_blobs)."))
