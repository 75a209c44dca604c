"""The learning-rate range test (Smith 2017; popularised by fast.ai).

Train from the configured init while the lr grows exponentially from `lr_min` to `lr_max`
over `steps` steps; record the loss, smoothed by a bias-corrected exponential moving
average; stop once the smoothed loss exceeds `blowup` times its minimum (or is NaN).
Two suggestions are read off the curve: the lr of steepest descent of the smoothed loss
(per unit of log lr) and the lr at the minimum smoothed loss divided by 10. The suggested
lr is the smaller of the two: both sit where the loss still falls fast and safely before
the blow-up. Each step is the solo engine's step (training.solo), so the test trains as a
run would: augmentation, autocast, penalties and clipping included.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optlab.errors import ConfigError
from optlab.training.build import build
from optlab.training.solo import SoloEngine
from optlab.training.state import EpochTally


@dataclass
class RangeTest:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    steepest_lr: float
    min_loss_lr: float

    @property
    def suggested_lr(self) -> float:
        return min(self.steepest_lr, self.min_loss_lr / 10)


def lr_at(step: int, steps: int, lr_min: float, lr_max: float) -> float:
    return lr_min * (lr_max / lr_min) ** (step / max(steps - 1, 1))


def run_range_test(cfg, lr_min: float = 1e-6, lr_max: float = 10.0, steps: int = 200,
                   beta: float = 0.98, blowup: float = 4.0, on_step=None) -> RangeTest:
    parts = build(cfg)
    if parts.objective is not None:
        raise ConfigError(f"optimizer={parts.cfg['optimizer']['name']} steps on the whole training split with "
                          "its own line search or step size; the LR range test needs a first-order optimizer")
    engine, batch_size = SoloEngine(parts), parts.batch_size(0)
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    step = 0
    while step < steps:
        engine.begin_epoch(0, parts.batches.num_batches(batch_size), [EpochTally.zero(parts.device)])
        for i, batch in enumerate(engine.batches(batch_size, skip=0, epoch=0)):  # epoch 0's batches, again and again
            lr = lr_at(step, steps, lr_min, lr_max)
            engine.set_lrs([lr])
            engine.step(i, batch, sample_norm=False)
            raw = engine.batch_loss.item()
            average = beta * average + (1 - beta) * raw
            current = average / (1 - beta ** (step + 1))
            lrs.append(lr), losses.append(raw), smoothed.append(current)
            step += 1
            if on_step is not None:
                on_step(step, steps)
            if not math.isfinite(current) or current > blowup * best or step >= steps:
                return _suggest(lrs, losses, smoothed)
            best = min(best, current)
    return _suggest(lrs, losses, smoothed)


def _suggest(lrs: list[float], losses: list[float], smoothed: list[float]) -> RangeTest:
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if len(finite) < 3:
        from optlab.errors import TrainingFailed
        raise TrainingFailed(f"lr-find: the loss blew up within {len(lrs)} steps; lower --min")
    curve = np.array([smoothed[i] for i in finite])
    log_lr = np.log10([lrs[i] for i in finite])
    skip = max(1, len(curve) // 10)  # the first steps are dominated by the moving average's warm-up
    slope = np.gradient(curve, log_lr)
    steepest = skip + int(np.argmin(slope[skip:])) if len(curve) > skip + 1 else int(np.argmin(slope))
    lowest = int(np.argmin(curve))
    return RangeTest(lrs, losses, smoothed, steepest_lr=float(10 ** log_lr[steepest]),
                     min_loss_lr=float(10 ** log_lr[lowest]))


def write_results(result: RangeTest, out_dir: Path) -> list[Path]:
    """lr_find.csv; report.plots.lr_range_test draws its figure."""
    from optlab.runs.files import CsvAppender

    table = CsvAppender(out_dir / "lr_find.csv", ["step", "lr", "loss", "smoothed_loss"])
    for i, (lr, raw, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
        table.append({"step": i, "lr": lr, "loss": raw, "smoothed_loss": smooth})
    return [out_dir / "lr_find.csv"]
