"""Learning-rate schedules: pure functions of training progress.

`t` is progress in epochs at the start of the current step (fractional with
schedule.interval=step, whole with interval=epoch); `total` is the run's length in epochs.
Each schedule is a `ScheduleSpec` in SCHEDULES, beside its conf/schedule/<name>.yaml.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from optlab.errors import ConfigError
from optlab.registry import (
    HALF_OPEN_UNIT,
    NON_NEGATIVE,
    OPEN_UNIT,
    POSITIVE,
    TARGET,
    UNIT,
    Check,
    Key,
    Registry,
    Spec,
    at_least,
    import_target,
    is_number,
)

LrFunction = Callable[[dict, float, float, float], float]  # (cfg, lr0, t, total) -> lr
AfterEpoch = Callable[[dict, dict, float], dict]  # (cfg, state, val_loss) -> the next state


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec(Spec):
    lr: LrFunction
    # the lr is a function of the whole epoch (the loop evaluates it at each epoch's first step)
    flat_within_epoch: bool = False
    # runs after each epoch's validation and returns the schedule's next state (reduce on plateau)
    after_epoch: AfterEpoch | None = None
    # the lr at epoch t does not depend on trainer.epochs, so a finished run can be continued
    # (cosine and one-cycle stretch with the run's length)
    extendable: bool = False


def epoch_numbers(values) -> bool:
    return isinstance(values, list) and all(is_epoch(v) for v in values)


def is_epoch(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 and int(value) == value


EPOCH_LIST = Check(epoch_numbers, "a list of epoch numbers >= 0")


def common_keys(interval: str) -> tuple[Key, ...]:
    """The keys every schedule takes, last in its YAML."""
    return (Key("warmup_epochs", 0, NON_NEGATIVE),
            Key("interval", interval, choices=("epoch", "step")))


SCHEDULES: Registry[ScheduleSpec] = Registry("schedule")


def constant(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0


def step(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0 * float(cfg["gamma"]) ** math.floor(t / int(cfg["step_size"]))


def multistep(cfg: dict, lr0: float, t: float, total: float) -> float:
    """lr0 * gamma ** (number of milestones passed)."""
    passed = sum(1 for m in milestones(cfg, "schedule") if t >= m)
    return lr0 * float(cfg["gamma"]) ** passed


def exponential(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0 * float(cfg["gamma"]) ** t


def inverse_time(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0 / (1 + float(cfg["k"]) * t)


def cosine(cfg: dict, lr0: float, t: float, total: float) -> float:
    return _cosine_between(lr0, float(cfg["min_lr"]), t / total if total > 0 else 1.0)


def onecycle(cfg: dict, lr0: float, t: float, total: float) -> float:
    """Smith & Topin 2019, two cosine phases as in torch's OneCycleLR: 1) from max_lr/div_factor
    up to max_lr over the first pct_start of the run, 2) down to max_lr/div_factor/final_div_factor.
    max_lr null (or deleted) means the optimizer's (batch-scaled) lr."""
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


def plateau(cfg: dict, lr0: float, t: float, total: float) -> float:
    return lr0  # scaled by the state from reduce_on_plateau, which the loop multiplies in


def reduce_on_plateau(cfg: dict, state: dict, val_loss: float) -> dict:
    """Multiply the lr by `factor` once the validation loss has not improved (by more than
    threshold, relative) for `patience` epochs; never below min_scale * lr0."""
    best, bad = state.get("best", math.inf), state.get("bad_epochs", 0)
    scale = state.get("scale", 1.0)
    if val_loss < best * (1 - float(cfg["threshold"])):
        best, bad = val_loss, 0
    else:
        bad += 1
    if bad > int(cfg["patience"]):
        scale *= float(cfg["factor"])
        bad = 0
    return {"best": best, "bad_epochs": bad, "scale": max(scale, float(cfg["min_scale"]))}


SCHEDULES.add(ScheduleSpec(
    name="constant", lr=constant, extendable=True, flat_within_epoch=True,
    description="The learning rate stays at optimizer.lr (after an optional linear warmup).",
    keys=common_keys("step")))
SCHEDULES.add(ScheduleSpec(
    name="step", lr=step, extendable=True, flat_within_epoch=True,
    description="lr = lr0 * gamma ** floor(t / step_size), t in epochs after warmup.",
    keys=(Key("step_size", 10, at_least(1)), Key("gamma", 0.1, POSITIVE), *common_keys("epoch"))))
SCHEDULES.add(ScheduleSpec(
    name="multistep", lr=multistep, extendable=True, flat_within_epoch=True,
    description="lr = lr0 * gamma ** (number of milestones reached); milestones are epochs counted after warmup.",
    keys=(Key("milestones", [10, 15], EPOCH_LIST), Key("gamma", 0.1, POSITIVE), *common_keys("epoch"))))
SCHEDULES.add(ScheduleSpec(
    name="exponential", lr=exponential, extendable=True,
    description="lr = lr0 * gamma ** t, t in epochs (a factor gamma per epoch).",
    keys=(Key("gamma", 0.9, POSITIVE), *common_keys("epoch"))))
SCHEDULES.add(ScheduleSpec(
    name="inverse_time", lr=inverse_time, extendable=True,
    description="1/t decay: lr = lr0 / (1 + k * t), t in epochs.",
    keys=(Key("k", 0.5, NON_NEGATIVE), *common_keys("epoch"))))
SCHEDULES.add(ScheduleSpec(
    name="cosine", lr=cosine,
    description="Cosine annealing from lr0 to min_lr over the run: lr = min + (lr0 - min) * (1 + cos(pi t / T)) / 2",
    keys=(Key("min_lr", 0.0, NON_NEGATIVE), *common_keys("step"))))
SCHEDULES.add(ScheduleSpec(
    name="onecycle", lr=onecycle,
    description="One-cycle (Smith & Topin 2019): cosine from max_lr/div_factor up to max_lr over the first "
                "pct_start of the run, then cosine down to max_lr/div_factor/final_div_factor.",
    keys=(Key("max_lr", None, POSITIVE, kind=float), Key("pct_start", 0.3, OPEN_UNIT),
          Key("div_factor", 25.0, POSITIVE), Key("final_div_factor", 10000.0, POSITIVE), *common_keys("step"))))
SCHEDULES.add(ScheduleSpec(
    name="plateau", lr=plateau, extendable=True, flat_within_epoch=True, after_epoch=reduce_on_plateau,
    description="Reduce on plateau: lr *= factor once the validation loss has not improved by more than "
                "threshold (relative) for more than `patience` epochs; the lr never drops below min_scale * lr0.",
    keys=(Key("factor", 0.1, OPEN_UNIT), Key("patience", 5, NON_NEGATIVE), Key("threshold", 1.0e-4, HALF_OPEN_UNIT),
          Key("min_scale", 0.0, UNIT), *common_keys("epoch"))))


def milestones(cfg: dict, group: str) -> list[int]:
    """cfg["milestones"] as epoch numbers; ConfigError names the key when one is not."""
    values = cfg["milestones"]
    if not EPOCH_LIST.test(values):
        raise ConfigError(f"{group}.milestones={values}: must be {EPOCH_LIST.expect}")
    return [int(m) for m in values]


def custom(cfg: dict, lr0: float, t: float, total: float) -> float:
    """schedule=custom: the user's function of the same arguments as the schedules above."""
    target = cfg["_target_"]
    lr = import_target("schedule._target_", target, SCHEDULES.get("custom").target)(cfg, lr0, t, total)
    if not is_number(lr) or not math.isfinite(lr) or lr < 0:
        raise ConfigError(f"schedule._target_={target}: returned {lr!r} at t={t}, not a learning rate (a number >= 0)")
    return float(lr)


SCHEDULES.add(ScheduleSpec(
    name="custom", lr=custom, keys=(TARGET, *common_keys("step")), target=("cfg", "lr0", "t", "total"),
    description="Your own schedule: schedule._target_=module:function names a pure function (cfg, lr0, t, total) "
                "-> lr, t the progress in epochs and total the run's epochs (after warmup), as the built-in "
                "schedules; cfg is the schedule option's mapping."))


def learning_rate(cfg: dict, lr0: float, t: float, total: float, unit: float) -> float:
    """lr at progress t: 1) linear warmup over warmup_epochs, 2) the named schedule after it.

    `unit` is the length of one update of the lr in epochs (1/steps_per_epoch or 1), so the
    first warmup step already trains with lr0 * unit / warmup rather than with 0.
    """
    warmup = float(cfg["warmup_epochs"])
    if t < warmup:
        return lr0 * min(1.0, (t + unit) / warmup)
    return SCHEDULES.get(cfg["name"]).lr(cfg, lr0, t - warmup, total - warmup)


def changes_within_epoch(cfg: dict) -> bool:
    """Whether the lr can differ between the steps of one epoch; when not, the loop evaluates
    the schedule at each epoch's first step only (the same lrs, fewer calls)."""
    if cfg["interval"] == "epoch":
        return False
    return float(cfg["warmup_epochs"]) > 0 or not SCHEDULES.get(cfg["name"]).flat_within_epoch


def check(cfg: dict, lr0: float, total: float) -> None:
    """Evaluate the schedule once: settings it reads only when used fail now, as a
    ConfigError naming the key, instead of at the run's first step."""
    SCHEDULES.get(cfg["name"]).lr(cfg, lr0, 0.0, total)


def progress(cfg: dict, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> tuple[float, float]:
    """(t, unit) for the lr of this step, following schedule.interval."""
    if cfg["interval"] == "epoch":
        return float(epoch), 1.0
    return epoch + step_in_epoch / steps_per_epoch, 1.0 / steps_per_epoch


def after_epoch(cfg: dict, state: dict, val_loss: float) -> dict:
    """The schedule's state after an epoch's validation: its spec's after_epoch hook (reduce on
    plateau) decides; schedules without one keep state {} and ignore validation."""
    hook = SCHEDULES.get(cfg["name"]).after_epoch
    return state if hook is None else hook(cfg, state, val_loss)
