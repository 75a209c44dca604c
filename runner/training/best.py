"""What a run watches on the validation split: the best epoch's weights (best.pt) and early stopping.

Both read only validation numbers (the test split is measured once, at the end, with the best
epoch's weights). The best weights ride in every checkpoint, so a resume knows them; best.pt
is written with each checkpoint in which they changed. Early stopping is a function of the
metrics rows, so a resume replays the rows it keeps; an extension (`--resume RUN
trainer.epochs=M`) starts the count of epochs without improvement afresh at the old end.
"""
from __future__ import annotations

import math
from collections.abc import Callable

BEST_FILE = "best.pt"  # {state_dict, epoch, metric, value}: torch.load(path, weights_only=True) reads it


def watched(metric: str, task: str) -> tuple[str, bool]:
    """(metrics.csv column, higher is better): val_acc is val_loss where the data has no accuracy."""
    column = "val_loss" if metric == "val_acc" and task != "classification" else metric
    return column, column.endswith("_acc")


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class BestWeights:
    """The weights of the epoch best on `metric` so far (strictly better: the earliest wins a tie)."""

    def __init__(self, metric: str, task: str):
        self.metric, self.maximize = watched(metric, task)
        self.value: float | None = None
        self.epoch: int | None = None
        self.weights: dict | None = None  # a CPU copy of the state_dict, replaced (never mutated)
        self.unwritten = False  # changed since best.pt was last written

    def offer(self, epoch: int, row: dict, weights: Callable[[], dict]) -> None:
        value = row.get(self.metric)
        if not finite(value):
            return
        if self.value is None or (value > self.value if self.maximize else value < self.value):
            self.value, self.epoch, self.weights, self.unwritten = float(value), epoch, weights(), True

    def to_checkpoint(self) -> dict | None:
        if self.weights is None:
            return None
        return {"epoch": self.epoch, "metric": self.metric, "value": self.value, "state_dict": self.weights}

    def restore(self, saved: dict | None) -> None:
        """From a checkpoint's `best` (none in one from an older optlab: the next epoch sets it)."""
        if saved and saved.get("metric") == self.metric:
            self.value, self.epoch, self.weights = saved["value"], saved["epoch"], saved["state_dict"]
            self.unwritten = True


class EarlyStopping:
    """Stop once `patience` epochs in a row have not improved on the best by more than
    min_delta (Keras's EarlyStopping rule); patience 0 never stops."""

    def __init__(self, cfg: dict, task: str):
        self.patience, self.min_delta = int(cfg["patience"]), float(cfg["min_delta"])
        self.metric, self.maximize = watched(str(cfg["metric"]), task)
        self.best: float | None = None
        self.wait = 0

    def update(self, row: dict) -> None:
        value = row.get(self.metric)
        if not finite(value):
            return
        if self.best is None or self.improves(value):
            self.best, self.wait = float(value), 0
        else:
            self.wait += 1

    def improves(self, value: float) -> bool:
        if self.maximize:
            return value - self.min_delta > self.best
        return value + self.min_delta < self.best

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.wait >= self.patience

    def replay(self, rows: list[dict], restarts: list[int]) -> None:
        """The state after these rows; the count restarts after the last epoch of each
        extended run (`restarts`: its epoch counts)."""
        for row in rows:
            self.update(row)
            if int(row["epoch"]) + 1 in restarts:
                self.wait = 0


class Watch:
    """A run's BestWeights and EarlyStopping, built from its trainer config."""

    def __init__(self, trainer: dict, task: str):
        self.best = BestWeights(str(trainer.get("best_metric", "val_acc")), task)
        self.early = EarlyStopping(trainer.get("early_stop") or {"patience": 0, "min_delta": 0.0, "metric": "val_loss"},
                                   task)

    def end_epoch(self, epoch: int, row: dict, weights: Callable[[], dict]) -> None:
        self.best.offer(epoch, row, weights)
        self.early.update(row)

    def resume(self, checkpoint: dict | None, rows: list[dict], restarts: list[int]) -> None:
        self.best.restore((checkpoint or {}).get("best"))
        self.early.replay(rows, restarts)

    def summary(self) -> dict:
        return {"best_epoch": self.best.epoch, "best_metric": self.best.metric}
