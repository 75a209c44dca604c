"""Hyper-parameters that change while a run trains (PBT's explore, a replayed schedule):
which config keys may, reading them, and setting them in a run's parts.

A key may change during a run when it is one number the step reads afresh: the optimizer's
numbers (lr, weight decay, momentum, eps, ...), the schedule's, and the regularizers' (L1,
L2, clipping, label smoothing). The rest shape the run when it is built (model, data, batch
plan, initialization, seed, the kinds of optimizer and schedule) and are set once. After
set_values, the engine that holds the run takes the new values up (Engine.retuned).
"""
from __future__ import annotations

from typing import Any

from optlab.optim import batching
from optlab.optim.optimizers import retune
from optlab.optim.regularize import loss_fn

CHANGEABLE_PREFIXES = ("optimizer.", "schedule.", "regularize.l1", "regularize.l2", "regularize.clip_norm",
                       "regularize.clip_value", "regularize.label_smoothing")
NOT_ONE_NUMBER = ("optimizer.name", "schedule.name", "optimizer.lr_scale", "optimizer._target_",
                  "schedule._target_", "optimizer.betas", "schedule.milestones", "optimizer.line_search_fn")


def why_fixed(key: str) -> str | None:
    """Why `key` cannot change while a run trains (None: it can)."""
    if key in NOT_ONE_NUMBER:
        return f"{key} is not one number the step reads afresh"
    if not key.startswith(CHANGEABLE_PREFIXES):
        return (f"{key} shapes the run when it is built; the keys that may change while a run trains are the "
                f"optimizer's, the schedule's and regularize's l1, l2, clip_norm, clip_value and label_smoothing")
    return None


def value_of(cfg: dict, key: str) -> Any:
    """The value of a dotted key in a plain config (`optimizer.lr` -> cfg["optimizer"]["lr"])."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def set_values(parts, values: dict[str, Any]) -> None:
    """Set these keys (each one that may change, why_fixed) in a run's config and in what was
    built from it: the optimizer's param groups (its state stays), the lr the schedule starts
    from, the loss (label smoothing). The engine holding the run is told by the caller."""
    cfg = parts.cfg
    for key, value in values.items():
        *path, last = key.split(".")
        node = cfg
        for part in path:
            node = node[part]
        node[last] = value
    retune(parts.optimizer, cfg["optimizer"])
    parts.lr0 = float(cfg["optimizer"]["lr"]) * batching.lr_scale(cfg["batch"])
    parts.loss = loss_fn(parts.data.task, cfg)
