"""Batch-size plans: the batch size of each epoch and the lr multiplier that goes with it.

Every plan still makes one pass over the whole training split per epoch; only the number
of steps that pass takes changes with the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from optlab.optim.schedules import EPOCH_LIST, milestones
from optlab.registry import Key, Registry, Spec, at_least


@dataclass(frozen=True, kw_only=True)
class BatchPlan(Spec):
    size: Callable[[dict, int, int], int]  # (cfg, epoch, n_train) -> batch size
    lr_scale: Callable[[dict], float] = lambda cfg: 1.0


def _increasing(cfg: dict, epoch: int, n_train: int) -> int:
    """Smith & Le 2017: grow the batch by `factor` at each milestone instead of decaying the lr."""
    reached = sum(1 for m in milestones(cfg, "batch") if epoch >= m)
    return min(int(cfg["size"]) * int(cfg["factor"]) ** reached, n_train)


def _configured_size(cfg: dict, epoch: int, n_train: int) -> int:
    return min(int(cfg["size"]), n_train)


def size_key(default: int) -> Key:
    return Key("size", default, at_least(1))


BATCH_PLANS: Registry[BatchPlan] = Registry("batch")
BATCH_PLANS.add(BatchPlan(
    name="fixed", size=_configured_size, keys=(size_key(64),),
    description="The same mini-batch size for the whole run."))
BATCH_PLANS.add(BatchPlan(
    name="linear_scaling", size=_configured_size, lr_scale=lambda c: int(c["size"]) / int(c["base_size"]),
    description="The linear scaling rule (Goyal et al. 2017): batch `size`, and the lr is "
                "optimizer.lr * size / base_size.",
    keys=(size_key(256), Key("base_size", 64, at_least(1)))))
BATCH_PLANS.add(BatchPlan(
    name="increasing", size=_increasing,
    description="Increase the batch size instead of decaying the lr (Smith & Le 2017): the batch size is "
                "size * factor ** (milestones reached), capped at the training split; the lr stays constant.",
    keys=(size_key(32), Key("factor", 2, at_least(1)), Key("milestones", [5, 10, 15], EPOCH_LIST))))
BATCH_PLANS.add(BatchPlan(
    name="full", size=lambda c, epoch, n: n,
    description="The whole training split in every batch (one step per epoch)."))


def batch_size_at(cfg: dict, epoch: int, n_train: int) -> int:
    return max(1, BATCH_PLANS.get(cfg["name"]).size(cfg, epoch, n_train))


def lr_scale(cfg: dict) -> float:
    return BATCH_PLANS.get(cfg["name"]).lr_scale(cfg)
