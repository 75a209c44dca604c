"""Datasets -> tensors; the held-out validation split; standardization; the on-device loader.

A dataset loader returns the whole training pool as tensors: x float32 shaped (N, D) for
tables or (N, C, H, W) for images, y int64 class labels (classification) or float32
targets (regression). Everything after that (split, standardize, batch) is shared.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from runner.errors import ConfigError, DataError
from runner.registry import Registry


@dataclass
class Pool:
    """What a dataset loader returns, before the validation split."""

    x: torch.Tensor
    y: torch.Tensor
    task: str = "classification"  # classification | regression


@dataclass
class Dataset:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    task: str
    num_classes: int  # 0 for regression
    mean: torch.Tensor  # standardization statistics of the training split
    std: torch.Tensor

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def output_dim(self) -> int:
        if self.task == "classification":
            return self.num_classes
        return 1 if self.y_train.dim() == 1 else self.y_train.shape[1]

    def to(self, device: torch.device) -> "Dataset":
        moved = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return Dataset(**{**vars(self), **moved})


DATASETS: Registry[Callable[[dict, int], Pool]] = Registry("data")


# ---------------------------------------------------------------- built-in datasets

def sklearn_data_file(name: str) -> Path:
    """A data file shipped inside scikit-learn, found without importing it (which takes seconds)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("scikit-learn is not installed: it ships the digits data offline (pip install scikit-learn)")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        raise DataError(f"{path}: missing from the scikit-learn installation")
    return path


@DATASETS.register("digits")
def load_digits(cfg: dict, seed: int) -> Pool:
    table = np.loadtxt(sklearn_data_file("digits.csv.gz"), delimiter=",", dtype=np.float32)
    x = torch.from_numpy(table[:, :-1].reshape(-1, 1, 8, 8).copy())  # (N, 1, 8, 8), values 0..16
    return Pool(x, torch.from_numpy(table[:, -1].astype(np.int64)))


@DATASETS.register("moons")
def load_moons(cfg: dict, seed: int) -> Pool:
    """Two interleaving half circles with Gaussian noise (as scikit-learn's make_moons)."""
    n, noise = int(cfg.get("n_samples", 1000)), float(cfg.get("noise", 0.2))
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


@DATASETS.register("spirals")
def load_spirals(cfg: dict, seed: int) -> Pool:
    n, classes, noise = int(cfg.get("n_samples", 1500)), int(cfg.get("classes", 3)), float(cfg.get("noise", 0.2))
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


@DATASETS.register("linreg")
def load_linreg(cfg: dict, seed: int) -> Pool:
    """Least squares: y = X w* + noise with X ~ N(0, I) and w* ~ N(0, I), drawn from the seed."""
    n, d, noise = int(cfg.get("n_samples", 1000)), int(cfg.get("n_features", 20)), float(cfg.get("noise", 0.1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w_star = rng.normal(size=d)
    y = x @ w_star + rng.normal(0.0, noise, n)
    return Pool(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), task="regression")


@DATASETS.register("blobs")
def load_blobs(cfg: dict, seed: int) -> Pool:
    """Isotropic Gaussian clusters, one per class, centers drawn uniformly in [-box, box]^d."""
    n, d, classes = int(cfg.get("n_samples", 1000)), int(cfg.get("n_features", 2)), int(cfg.get("classes", 3))
    std, box = float(cfg.get("cluster_std", 1.0)), float(cfg.get("box", 5.0))
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-box, box, size=(classes, d))
    y = np.arange(n) % classes
    x = centers[y] + rng.normal(0.0, std, size=(n, d))
    return Pool(torch.tensor(x, dtype=torch.float32), torch.from_numpy(y.astype(np.int64)))


# ---------------------------------------------------------------- split and standardize

def load_dataset(data_cfg: dict, val_fraction: float, seed: int) -> Dataset:
    pool = DATASETS.get(data_cfg["name"])(data_cfg, seed)
    train_idx, val_idx = split_indices(pool, val_fraction, seed)
    x_train, x_val = pool.x[train_idx], pool.x[val_idx]
    if data_cfg.get("standardize", True):
        mean, std = standardization_stats(x_train)
    else:
        mean, std = torch.zeros(()), torch.ones(())
    num_classes = int(pool.y.max().item()) + 1 if pool.task == "classification" else 0
    return Dataset(
        x_train=(x_train - mean) / std, y_train=pool.y[train_idx],
        x_val=(x_val - mean) / std, y_val=pool.y[val_idx],
        task=pool.task, num_classes=num_classes, mean=mean, std=std,
    )


def split_indices(pool: Pool, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out val_fraction of the pool, stratified by class for classification."""
    n = len(pool.x)
    if n < 2:
        raise ConfigError(f"data: {n} sample(s) cannot be split into training and validation")
    g = torch.Generator().manual_seed(seed)
    if pool.task != "classification":
        perm = torch.randperm(n, generator=g)
        n_val = min(max(1, round(n * val_fraction)), n - 1)
        return perm[n_val:].sort().values, perm[:n_val].sort().values
    train, val = [], []
    for label in torch.unique(pool.y):
        members = torch.nonzero(pool.y == label).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        n_val = round(len(members) * val_fraction)
        val.append(members[:n_val])
        train.append(members[n_val:])
    train_idx, val_idx = torch.cat(train).sort().values, torch.cat(val).sort().values
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ConfigError(f"trainer.val_fraction={val_fraction}: leaves an empty training or validation split")
    return train_idx, val_idx


def standardization_stats(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean/std for tables, per-channel for images; constant features keep std 1."""
    dims = (0,) if x_train.dim() == 2 else (0, 2, 3)
    mean = x_train.mean(dim=dims, keepdim=True)[0]
    std = x_train.std(dim=dims, keepdim=True)[0]
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return mean, std


# ---------------------------------------------------------------- the on-device loader

class _Batches:
    """One pass over the training split per epoch, in the order of a permutation drawn from
    the loader's own generator (restored on resume, so the batch order is too). The
    generator lives on the training device for both loaders, so the batch order, and with
    it every metric, does not depend on where the data is kept."""

    x: torch.Tensor
    generator: torch.Generator

    def permutation(self) -> torch.Tensor:
        return torch.randperm(len(self.x), generator=self.generator, device=self.generator.device)

    def __len__(self) -> int:
        return len(self.x)

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self.x) / batch_size)


class DeviceBatches(_Batches):
    """Mini-batches as index slices of an on-device random permutation: the data stays
    where it is (the training device); only the permutation is drawn."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        self.x, self.y, self.generator = x, y, generator

    def epoch(self, batch_size: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches, leaving out the first `skip` (done before a resume)."""
        perm = self.permutation().to(self.x.device)
        for start in range(skip * batch_size, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)  # faster than x[idx] on CPU


class StreamingBatches(_Batches):
    """Mini-batches gathered on the host and copied to the device step by step, for data
    that does not fit in device memory.

    The data stays in host memory; each epoch draws its permutation on the training device
    (as DeviceBatches does) and copies it to the host once; each step gathers its rows into
    a pinned buffer (CUDA) and copies it with non_blocking=True, so the copy overlaps the
    GPU's previous step.
    PyTorch's pinned-memory cache reuses a buffer only once its copy has finished.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, device: torch.device):
        self.x, self.y, self.generator, self.device = x, y, generator, device
        self.pin = device.type == "cuda"

    def epoch(self, batch_size: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = self.permutation().cpu()
        for start in range(skip * batch_size, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            yield self.copy_rows(self.x, idx), self.copy_rows(self.y, idx)

    def copy_rows(self, source: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        channels_last = source.dim() == 4 and not source.is_contiguous() and \
            source.is_contiguous(memory_format=torch.channels_last)
        rows = torch.empty((len(idx), *source.shape[1:]), dtype=source.dtype, pin_memory=self.pin,
                           memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        torch.index_select(source, 0, idx, out=rows)
        return rows.to(self.device, non_blocking=self.pin)


DEVICE_MEMORY_FRACTION = 0.5  # auto keeps the data on the device when it takes at most this much of the free memory


def data_fits(nbytes: int, free_bytes: int, fraction: float = DEVICE_MEMORY_FRACTION) -> bool:
    return nbytes <= fraction * free_bytes


def keep_data_on_device(setting: str | bool, data: Dataset, device: torch.device) -> bool:
    """trainer.data_on_device: true/false as asked; auto: on a CPU always (the data is there
    already), on CUDA when the dataset takes at most DEVICE_MEMORY_FRACTION of free memory."""
    if str(setting).lower() in ("true", "false"):
        return str(setting).lower() == "true"
    if device.type != "cuda":
        return True
    nbytes = sum(v.nbytes for v in vars(data).values() if isinstance(v, torch.Tensor))
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return data_fits(nbytes, free_bytes)


from runner import datasets_disk, datasets_generated  # noqa: E402,F401  (register more datasets)
