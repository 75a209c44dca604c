"""What every data source returns, and the registry the sources join."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from optlab.data.curriculum import ORDER_KEYS
from optlab.data.subset import SUBSET_KEYS
from optlab.registry import NON_NEGATIVE, Key, Registry, Spec, at_least


@dataclass
class Pool:
    """What a dataset loader returns, before the validation split; x_test/y_test are the
    data's own test files (MNIST's t10k-*, CIFAR's test batch) when it has them."""

    x: torch.Tensor
    y: torch.Tensor
    task: str = "classification"  # classification | regression
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None


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
    x_test: torch.Tensor | None = None  # the test split: never trained on, never used for a choice
    y_test: torch.Tensor | None = None

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and len(self.x_test) > 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def output_dim(self) -> int:
        if self.task == "classification":
            return self.num_classes
        return 1 if self.y_train.dim() == 1 else self.y_train.shape[1]

    def to(self, device: torch.device) -> Dataset:
        moved = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return Dataset(**{**vars(self), **moved})


@dataclass(frozen=True, kw_only=True)
class DatasetSpec(Spec):
    load: Callable[[dict, int], Pool]  # (data cfg, seed) -> the pool before the split
    images: bool = False  # inputs are (C, H, W) images
    regression: bool = False  # real-valued targets (a `task` key lets the data say either)
    from_disk: bool = False  # reads files from data.root or data.path; nothing is generated

    def __post_init__(self):
        # keys every data option takes, after its own: the order of training (data/curriculum.py), the classes kept (data/subset.py)
        object.__setattr__(self, "keys", self.keys + ORDER_KEYS + SUBSET_KEYS + (STANDARDIZE,))


# false: the raw inputs, without centering and scaling by the training split's statistics (data/split.py)
STANDARDIZE = Key("standardize", True)

DATASETS: Registry[DatasetSpec] = Registry("data")


def n_samples_key(default: int) -> Key:
    return Key("n_samples", default, at_least(2))


def noise_key(default: float) -> Key:
    return Key("noise", default, NON_NEGATIVE)


def classes_key(default: int) -> Key:
    return Key("classes", default, at_least(1))


ROOT = Key("root", "data")  # the folder with the files, relative to the working directory
TASK = Key("task", "classification", choices=("classification", "regression"))
