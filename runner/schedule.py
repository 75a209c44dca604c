"""Learning-rate schedules: pure functions of training progress.

`t` is progress in epochs at the start of the current step (fractional with
schedule.interval=step, whole with interval=epoch); `total` is the run's length in epochs.
"""
from __future__ import annotations

import math
from typing import Callable

from runner.registry import Registry

Schedule = Callable[[dict, float, float, float], float]  # (cfg, lr0, t, total) -> lr
SCHEDULES: Registry[Schedule] = Registry("schedule")


@SCHEDULES.register("constant")
def constant(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0


@SCHEDULES.register("step")
def step(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0 * float(cfg["gamma"]) ** math.floor(t / int(cfg["step_size"]))


@SCHEDULES.register("cosine")
def cosine(cfg: dict, lr0: float, t: float, total: float) -> float:
    min_lr = float(cfg.get("min_lr", 0.0))
    frac = min(t / total, 1.0) if total > 0 else 1.0
    return min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * frac)) / 2


def learning_rate(cfg: dict, lr0: float, t: float, total: float, unit: float) -> float:
    """lr at progress t: 1) linear warmup over warmup_epochs, 2) the named schedule after it.

    `unit` is the length of one update of the lr in epochs (1/steps_per_epoch or 1), so the
    first warmup step already trains with lr0 * unit / warmup rather than with 0.
    """
    warmup = float(cfg.get("warmup_epochs", 0) or 0)
    if t < warmup:
        return lr0 * min(1.0, (t + unit) / warmup)
    return SCHEDULES.get(cfg["name"])(cfg, lr0, t - warmup, total - warmup)


def progress(cfg: dict, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> tuple[float, float]:
    """(t, unit) for the lr of this step, following schedule.interval."""
    if cfg.get("interval", "step") == "epoch":
        return float(epoch), 1.0
    return epoch + step_in_epoch / steps_per_epoch, 1.0 / steps_per_epoch


# ---------------------------------------------------------------- state fed by validation

def after_epoch(cfg: dict, state: dict, val_loss: float) -> dict:
    """The one stateful schedule, reduce-on-plateau: multiply the lr by `factor` once the
    validation loss has not improved (by more than threshold, relative) for `patience`
    epochs. Other schedules keep state {} and ignore validation."""
    if cfg["name"] != "plateau":
        return state
    best, bad = state.get("best", math.inf), state.get("bad_epochs", 0)
    scale = state.get("scale", 1.0)
    if val_loss < best * (1 - float(cfg.get("threshold", 1e-4))):
        best, bad = val_loss, 0
    else:
        bad += 1
    if bad > int(cfg.get("patience", 5)):
        scale *= float(cfg.get("factor", 0.1))
        bad = 0
    return {"best": best, "bad_epochs": bad, "scale": max(scale, float(cfg.get("min_scale", 0.0)))}


@SCHEDULES.register("plateau")
def plateau(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0  # scaled by the state from after_epoch, which the loop multiplies in
