"""What every data source returns, and the registry the sources join."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

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
