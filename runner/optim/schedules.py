"""Learning-rate schedules: pure functions of training progress.

`t` is progress in epochs at the start of the current step (fractional with
schedule.interval=step, whole with interval=epoch); `total` is the run's length in epochs.
"""
from __future__ import annotations

import math
from typing import Callable

from runner.errors import ConfigError
from runner.registry import Registry

Schedule = Callable[[dict, float, float, float], float]  # (cfg, lr0, t, total) -> lr
SCHEDULES: Registry[Schedule] = Registry("schedule")


@SCHEDULES.register("constant")
def constant(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0


@SCHEDULES.register("step")
def step(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0 * float(cfg["gamma"]) ** math.floor(t / int(cfg["step_size"]))


@SCHEDULES.register("multistep")
def multistep(cfg: dict, lr0: float, t: float, total: float) -> float:
    """lr0 * gamma ** (number of milestones passed)."""
    passed = sum(1 for m in milestones(cfg, "schedule") if t >= m)
    return lr0 * float(cfg["gamma"]) ** passed


@SCHEDULES.register("exponential")
def exponential(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0 * float(cfg["gamma"]) ** t


@SCHEDULES.register("inverse_time")
def inverse_time(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0 / (1 + float(cfg["k"]) * t)


@SCHEDULES.register("cosine")
def cosine(cfg: dict, lr0: float, t: float, total: float) -> float:
    min_lr = float(cfg.get("min_lr", 0.0))
    return _cosine_between(lr0, min_lr, t / total if total > 0 else 1.0)


@SCHEDULES.register("onecycle")
def onecycle(cfg: dict, lr0: float, t: float, total: float) -> float:
    """Smith & Topin 2019, two cosine phases as in torch's OneCycleLR: 1) from max_lr/div_factor
    up to max_lr over the first pct_start of the run, 2) down to max_lr/div_factor/final_div_factor.
    max_lr null means the optimizer's (batch-scaled) lr."""
    peak = lr0 if cfg.get("max_lr") is None else float(cfg["max_lr"])
    start = peak / float(cfg["div_factor"])
    end = start / float(cfg["final_div_factor"])
    rise = float(cfg["pct_start"]) * total
    if t < rise:
        return _cosine_between(start, peak, t / rise)
    return _cosine_between(peak, end, (t - rise) / (total - rise) if total > rise else 1.0)


def _cosine_between(start: float, end: float, frac: float) -> float:
    """Half a cosine from start (frac=0) to end (frac>=1)."""
    return end + (start - end) * (1 + math.cos(math.pi * min(frac, 1.0))) / 2


def milestones(cfg: dict, group: str) -> list[int]:
    """cfg["milestones"] as epoch numbers; ConfigError names the key when one is not."""
    values = cfg.get("milestones") or []
    try:
        epochs = [int(m) for m in values]
    except (TypeError, ValueError):
        epochs = None
    if epochs is None or any(e < 0 or e != m for e, m in zip(epochs, values)):
        raise ConfigError(f"{group}.milestones={list(values)}: must be a list of epoch numbers >= 0")
    return epochs


def learning_rate(cfg: dict, lr0: float, t: float, total: float, unit: float) -> float:
    """lr at progress t: 1) linear warmup over warmup_epochs, 2) the named schedule after it.

    `unit` is the length of one update of the lr in epochs (1/steps_per_epoch or 1), so the
    first warmup step already trains with lr0 * unit / warmup rather than with 0.
    """
    warmup = float(cfg.get("warmup_epochs", 0) or 0)
    if t < warmup:
        return lr0 * min(1.0, (t + unit) / warmup)
    return SCHEDULES.get(cfg["name"])(cfg, lr0, t - warmup, total - warmup)


FLAT_WITHIN_EPOCHS = {"constant", "plateau", "step", "multistep"}  # lr a function of the whole epoch


def changes_within_epoch(cfg: dict) -> bool:
    """Whether the lr can differ between the steps of one epoch; when not, the loop evaluates
    the schedule at each epoch's first step only (the same lrs, fewer calls)."""
    if cfg.get("interval", "step") == "epoch":
        return False
    warmup = float(cfg.get("warmup_epochs", 0) or 0)
    return warmup > 0 or cfg["name"] not in FLAT_WITHIN_EPOCHS


def check(cfg: dict, lr0: float, total: float) -> None:
    """Evaluate the schedule once: settings it reads only when used (milestones) fail now,
    as a ConfigError naming the key, instead of at the run's first step."""
    SCHEDULES.get(cfg["name"])(cfg, lr0, 0.0, total)


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
