"""Batch-size plans: the batch size of each epoch and the lr multiplier that goes with it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from runner.registry import Registry


@dataclass(frozen=True)
class BatchPlan:
    size: Callable[[dict, int, int], int]  # (cfg, epoch, n_train) -> batch size
    lr_scale: Callable[[dict], float] = lambda cfg: 1.0


BATCH_PLANS: Registry[BatchPlan] = Registry("batch")
BATCH_PLANS.register("fixed")(BatchPlan(lambda c, epoch, n: min(int(c["size"]), n)))
BATCH_PLANS.register("full")(BatchPlan(lambda c, epoch, n: n))


def batch_size_at(cfg: dict, epoch: int, n_train: int) -> int:
    return max(1, BATCH_PLANS.get(cfg["name"]).size(cfg, epoch, n_train))


def lr_scale(cfg: dict) -> float:
    return BATCH_PLANS.get(cfg["name"]).lr_scale(cfg)
