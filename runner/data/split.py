"""The pool -> training, validation and test splits, standardized with the training split's statistics."""
from __future__ import annotations

import torch

from optlab.data._base import DATASETS, Dataset, Pool
from optlab.data.subset import keep_classes
from optlab.errors import ConfigError

TEST_SEED_OFFSET = 104_729  # the test split's own stream of the seed, apart from the validation split's


def load_dataset(data_cfg: dict, val_fraction: float, seed: int, standardize: bool = True,
                 test_fraction: float = 0.0) -> Dataset:
    """The data option's pool split by the seed; standardize=False keeps the raw values (tests).
    The test split is the data's own test files when it has them, else test_fraction of the
    pool held out by the seed before the validation split is drawn from the rest."""
    pool = keep_classes(DATASETS.get(data_cfg["name"]).load(data_cfg, seed), data_cfg)
    pool, x_test, y_test = separate_test(pool, test_fraction, seed, data_cfg["name"])
    train_idx, val_idx = split_indices(pool, val_fraction, seed)
    x_train, x_val = pool.x[train_idx], pool.x[val_idx]
    if standardize and data_cfg.get("standardize", True):
        mean, std = standardization_stats(x_train)
    else:
        mean, std = torch.zeros(()), torch.ones(())
    labels = pool.y if y_test is None else torch.cat([pool.y, y_test])
    num_classes = int(labels.max().item()) + 1 if pool.task == "classification" else 0
    return Dataset(
        x_train=(x_train - mean) / std, y_train=pool.y[train_idx],
        x_val=(x_val - mean) / std, y_val=pool.y[val_idx],
        task=pool.task, num_classes=num_classes, mean=mean, std=std,
        x_test=None if x_test is None else (x_test - mean) / std, y_test=y_test,
    )


def separate_test(pool: Pool, test_fraction: float, seed: int, name: str):
    """(the pool left for training and validation, x_test, y_test); no test split: Nones."""
    if pool.x_test is not None:
        if test_fraction > 0:
            raise ConfigError(f"trainer.test_fraction={test_fraction}: data={name} has its own test files; "
                              f"leave trainer.test_fraction=0")
        return pool, pool.x_test, pool.y_test
    if test_fraction <= 0:
        return pool, None, None
    rest, test = hold_out(pool, test_fraction, torch.Generator().manual_seed(seed + TEST_SEED_OFFSET))
    if len(test) == 0 or len(rest) < 2:
        raise ConfigError(f"trainer.test_fraction={test_fraction}: leaves an empty test split "
                          f"or too little to train and validate on ({len(pool.x)} samples)")
    return Pool(pool.x[rest], pool.y[rest], pool.task), pool.x[test], pool.y[test]


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
    train_idx, val_idx = hold_out(pool, val_fraction, g)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ConfigError(f"trainer.val_fraction={val_fraction}: leaves an empty training or validation split")
    return train_idx, val_idx


def hold_out(pool: Pool, fraction: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out) sorted indices: `fraction` of each class for classification, of the
    whole pool for regression, drawn from g."""
    if pool.task != "classification":
        perm = torch.randperm(len(pool.x), generator=g)
        n_out = round(len(perm) * fraction)
        return perm[n_out:].sort().values, perm[:n_out].sort().values
    kept, held = [], []
    for label in torch.unique(pool.y):
        members = torch.nonzero(pool.y == label).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        n_out = round(len(members) * fraction)
        held.append(members[:n_out])
        kept.append(members[n_out:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def standardization_stats(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean/std for tables, per-channel for images; constant features keep std 1."""
    dims = (0,) if x_train.dim() == 2 else (0, 2, 3)
    mean = x_train.mean(dim=dims, keepdim=True)[0]
    std = x_train.std(dim=dims, keepdim=True)[0]
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return mean, std
