"""Replay: one run trained from scratch under a piecewise-constant schedule of hyper-parameters
(a PBT sweep's best_schedule.yaml), as Ray Tune's PBT replay does.

trainer.replay names the schedule file: each changing key's values from the epoch given on
(epochs counted from 0, as in metrics.csv), e.g.

    schedule:
      optimizer.lr: [[0, 0.1], [4, 0.08], [8, 0.02]]

The run starts from its config (the file's epoch-0 values, which `optlab train --replay`
composes in), and before each epoch its keys take the values in force from that epoch on
(training.hyper.set_values); metrics.csv records them at every epoch. A resumed run takes
the values of the epoch it resumes in. What a replay reproduces: the schedule of
hyper-parameters, not the PBT member's weights: where the member's lineage passed through an
exploit, it continued from another member's weights, which a replay trains itself.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from optlab import safe_yaml
from optlab.config.compose import as_plain
from optlab.errors import ConfigError
from optlab.training.driver import BetweenEpochs
from optlab.training.hyper import set_values, why_fixed

Schedule = dict[str, list[tuple[int, Any]]]


def read_schedule(path: str | Path) -> tuple[dict, Schedule]:
    """A schedule file's mapping and its schedule, checked: each key one that may change
    while a run trains, its (epoch, value) pairs starting at epoch 0, epochs increasing,
    values numbers (or null)."""
    where = f"trainer.replay={path}"
    if not Path(path).is_file():
        raise ConfigError(f"{where}: no such file (a PBT sweep writes SWEEP_DIR/best_schedule.yaml)")
    raw = safe_yaml.load_file(Path(path), where=where)
    schedule = raw.get("schedule") if isinstance(raw, dict) else None
    if not isinstance(schedule, dict) or not schedule:
        raise ConfigError(f"{where}: no `schedule:` mapping of config keys to [[epoch, value], ...]")
    return raw, {str(key): _pairs(where, str(key), pairs) for key, pairs in schedule.items()}


def _pairs(where: str, key: str, pairs: Any) -> list[tuple[int, Any]]:
    reason = why_fixed(key)
    if reason:
        raise ConfigError(f"{where}: {reason}")
    ok = isinstance(pairs, list) and pairs and all(isinstance(p, list) and len(p) == 2 for p in pairs)
    epochs = [p[0] for p in pairs] if ok else []
    if not ok or epochs[0] != 0 or any(not isinstance(e, int) or isinstance(e, bool) for e in epochs) \
            or epochs != sorted(set(epochs)):
        raise ConfigError(f"{where}: {key}: give [[0, value], [epoch, value], ...] with increasing epochs from 0")
    for _, value in pairs:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise ConfigError(f"{where}: {key}: {value!r} is not a finite number")
    return [(int(e), v) for e, v in pairs]


def values_at(schedule: Schedule, epoch: int) -> dict[str, Any]:
    """Each key's value in force during `epoch`."""
    return {key: [v for e, v in pairs if e <= epoch][-1] for key, pairs in schedule.items()}


def replay_overrides(path: str | Path) -> list[str]:
    """What `optlab train --replay FILE` composes: the file's base overrides, its epoch-0
    values, its epochs, and trainer.replay naming the file."""
    raw, schedule = read_schedule(path)
    base = [str(o) for o in raw.get("base") or []]
    epochs = [f"trainer.epochs={int(raw['epochs'])}"] if isinstance(raw.get("epochs"), int) else []
    first = [f"{key}={'null' if v is None else v}" for key, v in values_at(schedule, 0).items()]
    return [*base, *epochs, *first, f"trainer.replay={Path(path).resolve()}"]


def replay_keys(cfg) -> tuple[str, ...]:
    """The keys a run's trainer.replay changes (metrics.csv records them); () without one."""
    path = as_plain(cfg)["trainer"].get("replay")
    return tuple(read_schedule(path)[1]) if path else ()


def replay_of(request) -> "Replay | None":
    path = as_plain(request.cfg)["trainer"].get("replay")
    return Replay(read_schedule(path)[1]) if path else None


class Replay(BetweenEpochs):
    """Sets a run's replayed values before each epoch it trains."""

    def __init__(self, schedule: Schedule):
        self.schedule = schedule

    def start(self, driver) -> None:
        for k, m in driver.active():
            self.apply(driver, k, m.folder.epoch)

    def end(self, driver, epoch: int, rows: dict[int, dict]) -> None:
        if any(e == epoch + 1 for pairs in self.schedule.values() for e, _ in pairs):
            for k in rows:
                self.apply(driver, k, epoch + 1)

    def apply(self, driver, k: int, epoch: int) -> None:
        set_values(driver.members[k].parts, values_at(self.schedule, epoch))
        driver.engine.retuned(k)
