"""Batched, on-device augmentations of training batches (never of the validation split).

The augment group is a mapping name -> parameters, applied in the order listed, so
`augment=[crop,flip]` crops then flips. Each augmentation maps (x, y, generator) to a new
(x, y); y may become soft class probabilities (mixup), which cross-entropy accepts.
"""
from __future__ import annotations

from typing import Callable

import torch

from runner.registry import Registry

Augmentation = Callable[[torch.Tensor, torch.Tensor, dict, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
AUGMENTATIONS: Registry[Augmentation] = Registry("augment")


@AUGMENTATIONS.register("none")
def _none(x, y, cfg, g):
    return x, y


def build_pipeline(augment_cfg: dict) -> Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple]:
    steps = [(AUGMENTATIONS.get(name), dict(params or {})) for name, params in augment_cfg.items() if name != "none"]

    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        for fn, params in steps:
            x, y = fn(x, y, params, g)
        return x, y

    apply.active = bool(steps)
    return apply
