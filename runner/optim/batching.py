"""Batch-size plans: the batch size of each epoch and the lr multiplier that goes with it.

Every plan still makes one pass over the whole training split per epoch; only the number
of steps that pass takes changes with the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from runner.optim.schedules import milestones
from runner.registry import Registry


@dataclass(frozen=True)
class BatchPlan:
    size: Callable[[dict, int, int], int]  # (cfg, epoch, n_train) -> batch size
    description: str
    lr_scale: Callable[[dict], float] = lambda cfg: 1.0


def _increasing(cfg: dict, epoch: int, n_train: int) -> int:
    """Smith & Le 2017: grow the batch by `factor` at each milestone instead of decaying the lr."""
    reached = sum(1 for m in milestones(cfg, "batch") if epoch >= m)
    return min(int(cfg["size"]) * int(cfg["factor"]) ** reached, n_train)


BATCH_PLANS: Registry[BatchPlan] = Registry("batch")
BATCH_PLANS.register("fixed")(BatchPlan(
    lambda c, epoch, n: min(int(c["size"]), n), "the same batch size all run"))
BATCH_PLANS.register("linear_scaling")(BatchPlan(
    lambda c, epoch, n: min(int(c["size"]), n), "batch `size` with lr scaled by size / base_size (Goyal et al. 2017)",
    lr_scale=lambda c: int(c["size"]) / int(c["base_size"])))
BATCH_PLANS.register("increasing")(BatchPlan(
    _increasing, "batch size multiplied by `factor` at each milestone epoch; the lr stays constant"))
BATCH_PLANS.register("full")(BatchPlan(lambda c, epoch, n: n, "the whole training split in every batch"))


def batch_size_at(cfg: dict, epoch: int, n_train: int) -> int:
    return max(1, BATCH_PLANS.get(cfg["name"]).size(cfg, epoch, n_train))


def lr_scale(cfg: dict) -> float:
    return BATCH_PLANS.get(cfg["name"]).lr_scale(cfg)
