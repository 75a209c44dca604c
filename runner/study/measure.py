"""Measures: one number per run (or per sweep) from its folder, then one per arm and seed.

Kinds:
- metric: a metrics.csv column at the final epoch, the best one (`at: best`: max for *_acc,
  min otherwise) or epoch N; `minus: COLUMN` subtracts another column of the same row.
- to_target: the steps (or epochs, `unit: epochs`) at the end of the first epoch whose
  `column` reaches `target` (`op: "<="` by default, or ">="; train_loss is the epoch's mean,
  with a full batch the loss before its step). A run that never does, or diverged first, counts as its
  whole budget (epochs x the steps of its first epoch) and is counted as censored: a lower
  bound, so it can only shrink a claimed slowdown.
- layer: a layers.csv statistic (diagnostics) of the hidden layers at `epoch` (-1: before
  the first step): `reduce` first, last, mean, ratio (last / first) or per_layer (ratio **
  (1 / (layers - 1)), the geometric-mean factor per layer).
- unit_spread: from the final checkpoint, the largest over hidden layers of
  ||W - mean row|| / ||W|| (0 when every unit of the layer has the same weights).
- sweep_best: a sweep arm's best value over its completed trials (trials.csv).
- tuned: in a study built on a comparison, a rerun's value of its workload's metric at the
  comparison's epoch (what the comparison's pairwise verdicts compare).
An arm with an inner grid (a=1,2 in its overrides) gets, per seed, the `over_variants`
(min or max) of its variants' values.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from optlab.compare.measure import first_reaching, rows_of, value_at
from optlab.errors import ConfigError
from optlab.study.spec import REDUCTIONS

CENSORED = "censored"


def metric_value(rows: list[dict], m: dict) -> float:
    column, at = m["column"], m.get("at", "final")
    if not rows or column not in rows[0]:
        return math.nan
    if at == "final":
        row = rows[-1]
    elif at == "best":
        finite = [r for r in rows if math.isfinite(r[column])]
        if not finite:
            return math.nan
        pick = max if column.endswith("acc") else min
        row = pick(finite, key=lambda r: r[column])
    else:
        matching = [r for r in rows if int(r["epoch"]) == int(at)]
        if not matching:
            return math.nan
        row = matching[0]
    value = row[column]
    return value - row[m["minus"]] if m.get("minus") else value


def to_target(rows: list[dict], m: dict, epochs: int) -> tuple[float, bool]:
    """(steps or epochs to the target, censored)."""
    column, target, op = m["column"], float(m["target"]), m.get("op", "<=")
    unit = "epoch" if m.get("unit") == "epochs" else "step"
    reached = first_reaching(rows, column, target, maximize=op == ">=")
    if reached is not None:  # metrics.csv's epoch 0 is 1 epoch trained
        return float(rows[reached][unit] + (1 if unit == "epoch" else 0)), False
    if unit == "epoch":
        return float(epochs), True
    per_epoch = rows[0]["step"] if rows else math.nan
    return float(per_epoch * epochs), True


def layer_rows(run_dir: Path, epoch: int) -> list[dict] | None:
    """layers.csv's rows of one epoch (-1: before the first step) in layer order; None without the file."""
    path = Path(run_dir) / "layers.csv"
    if not path.is_file():
        return None
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["epoch"] and int(r["epoch"]) == epoch]
    return sorted(rows, key=lambda r: int(r["layer"]))


def layer_value(run_dir: Path, m: dict) -> float:
    rows = layer_rows(run_dir, int(m.get("epoch", -1)))
    if rows is None:
        raise ConfigError(f"{run_dir}: no layers.csv (a layer measure needs trainer.diagnostics=true)")
    values = [float(r[m["stat"]]) for r in rows]
    if not values:
        return math.nan
    return reduce_layers(values, m.get("reduce", "ratio"))


def reduce_layers(values: list[float], how: str) -> float:
    if how == "first":
        return values[0]
    if how == "last":
        return values[-1]
    if how == "mean":
        return sum(values) / len(values)
    ratio = values[-1] / values[0] if values[0] else math.nan
    if how == "ratio":
        return ratio
    if how == "per_layer":
        return ratio ** (1 / (len(values) - 1)) if len(values) > 1 and ratio >= 0 else math.nan
    raise ConfigError(f"layer measure: reduce {how!r}: choose from {', '.join(REDUCTIONS)}")


def unit_spread(run_dir: Path) -> float:
    """How far the hidden units of a layer are from being identical, at the end of training."""
    from optlab.runs.folder import load_checkpoint

    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        return math.nan
    state = load_checkpoint(path)["model"]
    weights = [w.double() for k, w in state.items() if k.endswith("weight") and w.dim() == 2]
    spreads = [spread_of(w) for w in weights[:-1]]  # the last is the output layer: its units differ
    return max(spreads) if spreads else math.nan


def spread_of(w) -> float:
    norm = float(w.norm())
    return float((w - w.mean(dim=0, keepdim=True)).norm()) / norm if norm > 0 else 0.0


def sweep_best(sweep_dir: Path) -> float:
    from optlab.sweep.outputs import best_rows, read_sweep_json, read_trial_rows

    meta = read_sweep_json(sweep_dir)
    best = best_rows(read_trial_rows(sweep_dir), str(meta["direction"]), 1)
    return float(best[0]["value"]) if best else math.nan


def run_value(record, m: dict, epochs: int) -> tuple[float, bool]:
    """(this measure of one run or sweep, censored)."""
    kind = m["kind"]
    if kind == "tuned":
        column, maximize = m["columns"][record.arm]
        return value_at(rows_of(record.path), column, m["at"], maximize), False
    if kind == "sweep_best":
        return sweep_best(record.path), False
    if kind == "layer":
        return layer_value(record.path, m), False
    if kind == "unit_spread":
        return unit_spread(record.path), False
    rows = rows_of(record.path)
    if kind == "to_target":
        return to_target(rows, m, epochs)
    return metric_value(rows, m), False


def measure_all(spec, records: list, epochs_of) -> tuple[dict, list[dict]]:
    """{measure: {arm: {seed: value}}} and the per-run rows (runs.csv)."""
    values: dict = {name: {a.name: {} for a in spec.arms} for name in spec.measures}
    rows = []
    for record in records:
        row = {"arm": record.arm, "seed": record.seed, "variant": record.variant, "status": record.status,
               "reused": record.reused, "path": str(record.path)}
        for name, m in spec.measures.items():
            value, censored = run_value(record, m, epochs_of(record))
            row[name] = value
            if censored:
                row[f"{name}_{CENSORED}"] = True
            per_seed = values[name][record.arm]
            per_seed[record.seed] = combine(per_seed.get(record.seed), value, m.get("over_variants"))
        rows.append(row)
    return values, rows


def measure_range(spec, name: str) -> tuple[float, float]:
    """The values a measure can take, which its intervals stay inside: its column's (a
    difference's with `minus`), steps and epochs >= 0, a layer statistic's (a ratio of
    non-negative ones >= 0), unit_spread in [0, 1] (centring the rows is a projection, so
    ||W - mean row|| <= ||W||), a sweep's best value its metric's."""
    from optlab.report.stats import ANY, NON_NEGATIVE, UNIT, difference_range, value_range

    m = spec.measures[name]
    kind = m["kind"]
    if kind == "metric":
        column = value_range(m["column"])
        return column if not m.get("minus") else difference_range(column, value_range(m["minus"]))
    if kind == "to_target":
        return NON_NEGATIVE
    if kind == "unit_spread":
        return UNIT
    if kind == "layer":
        stat = value_range(m["stat"])
        if m.get("reduce", "ratio") in ("first", "last", "mean"):
            return stat
        return NON_NEGATIVE if stat[0] >= 0 else ANY
    metrics = {str((arm.sweep or {}).get("metric", "val_acc")) for arm in spec.arms if arm.sweep is not None}
    return value_range(metrics.pop()) if len(metrics) == 1 else ANY


def combine(old: float | None, new: float, how: str | None) -> float:
    if old is None:
        return new
    if how not in ("min", "max"):
        raise ConfigError("an arm with several variants per seed needs its measures' over_variants: min or max")
    finite = [v for v in (old, new) if math.isfinite(v)]
    if not finite:
        return math.nan
    return min(finite) if how == "min" else max(finite)
