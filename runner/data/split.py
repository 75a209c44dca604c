"""The pool -> training and validation splits, standardized with the training split's statistics."""
from __future__ import annotations

import torch

from runner.data._base import DATASETS, Dataset, Pool
from runner.data.subset import keep_classes
from runner.errors import ConfigError


def load_dataset(data_cfg: dict, val_fraction: float, seed: int, standardize: bool = True) -> Dataset:
    """The data option's pool split by the seed; standardize=False keeps the raw values (tests)."""
    pool = keep_classes(DATASETS.get(data_cfg["name"]).load(data_cfg, seed), data_cfg)
    train_idx, val_idx = split_indices(pool, val_fraction, seed)
    x_train, x_val = pool.x[train_idx], pool.x[val_idx]
    if standardize:
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
