"""Optimizer registry: one entry per update rule, built from the optimizer config group."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from runner.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    make: Callable[[Iterable[torch.nn.Parameter], dict], torch.optim.Optimizer]
    description: str
    full_batch: bool = False  # one step per epoch on the whole training split (gradient descent)


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def _sgd(params, c: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=float(c["lr"]), momentum=float(c.get("momentum", 0.0)),
                           nesterov=bool(c.get("nesterov", False)),
                           weight_decay=float(c.get("weight_decay", 0.0)))


def _adam(params, c: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=float(c["lr"]), betas=tuple(c.get("betas", (0.9, 0.999))),
                            eps=float(c.get("eps", 1e-8)), weight_decay=float(c.get("weight_decay", 0.0)))


OPTIMIZERS.register("sgd")(OptimizerSpec(_sgd, "mini-batch SGD, optional (Nesterov) momentum"))
OPTIMIZERS.register("adam")(OptimizerSpec(_adam, "Adam with bias-corrected moments"))


def build_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg["name"]).make(params, cfg)


def is_full_batch(cfg: dict) -> bool:
    return OPTIMIZERS.get(cfg["name"]).full_batch


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
