"""What a comparison measures, from its sweeps' trials and run folders.

- Time to target: the steps (and training seconds, metrics.csv's epoch_time_s summed) at the
  end of the first epoch whose validation metric reaches the workload's target (>= for an
  accuracy, <= for a loss). A run that never does within its budget is censored: its time is
  infinite for the profile and reported as a lower bound, the steps of its whole budget.
- A study's time is its fastest trial's (AlgoPerf); a contender's time on a workload is the
  median over its studies, infinite when most studies never reached the target.
- `target: auto`: for each contender, the median over studies of the study's best value
  within the first `target_share` of the epochs (each trial's best epoch there; a half by
  default); the target is the best contender's, recorded with its name. As AlgoPerf's targets
  come from the best target-setting runs, this one comes from the best contender, but from
  part of its budget, so that it reaches the target with time to spare and the profile tells
  speeds apart: set from the whole budget, a target is reached only by the contenders that
  match the best one's final value, at the budget's end.
- The chosen setting of a workload and contender, the one its reruns train, is the tuning
  trial with the best metric at the protocol's epoch (`at`); ties go to the faster one, then
  to the earlier study, then to the overrides in text order (not the trial number, which a
  retried trial changes). Diverged trials (no finite value) are never chosen.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from optlab.compare.spec import ComparisonSpec, Workload
from optlab.runs.status import Status

FINISHED = (Status.COMPLETED, Status.DIVERGED)  # trials.csv statuses of a trial that trained to its end


@dataclass(frozen=True)
class Trial:
    workload: str
    contender: str
    study: int | None           # the tuning study; None for a rerun
    number: int                 # the sweep's trial number
    seed: int
    overrides: tuple[str, ...]  # the sampled values, as overrides
    run_dir: Path
    status: str
    rows: tuple[dict, ...]      # metrics.csv, one dict per epoch
    epochs: int                 # the budget (config.yaml's trainer.epochs)


@dataclass(frozen=True)
class Reach:
    steps: float      # inf when censored
    seconds: float    # inf when censored
    censored: bool
    bound_steps: float    # censored: the steps of the whole budget (a lower bound); else = steps
    bound_seconds: float  # censored: the seconds the run trained (a lower bound); else = seconds


def rows_of(run_dir: Path) -> list[dict]:
    """metrics.csv as one dict of floats per epoch (a torn last line left out)."""
    from optlab.report.load import read_metrics

    table, _ = read_metrics(Path(run_dir) / "metrics.csv")
    names = list(table)
    return [dict(zip(names, values)) for values in zip(*table.values())] if names else []


def reaches(value: float, target: float, maximize: bool) -> bool:
    return math.isfinite(value) and (value >= target if maximize else value <= target)


def first_reaching(rows: list[dict], column: str, target: float, maximize: bool) -> int | None:
    """The index of the first row whose column reaches the target, if any."""
    return next((i for i, r in enumerate(rows) if reaches(r.get(column, math.nan), target, maximize)), None)


def time_to_target(rows, column: str, target: float, maximize: bool, epochs: int) -> Reach:
    rows = list(rows)
    i = first_reaching(rows, column, target, maximize)
    if i is None:
        per_epoch = rows[0]["step"] if rows else math.nan
        return Reach(math.inf, math.inf, True, float(per_epoch * epochs), _seconds(rows))
    steps, seconds = float(rows[i]["step"]), _seconds(rows[: i + 1])
    return Reach(steps, seconds, False, steps, seconds)


def _seconds(rows: list[dict]) -> float:
    return float(sum(r["epoch_time_s"] for r in rows))


def value_at(rows, column: str, at: str, maximize: bool) -> float:
    """The column at the final epoch, or its best over epochs (nan when there is none)."""
    values = [r.get(column, math.nan) for r in rows]
    if at == "final":
        return float(values[-1]) if values else math.nan
    finite = [v for v in values if math.isfinite(v)]
    return (max if maximize else min)(finite) if finite else math.nan


def read_trials(sweep_dir: Path, workload: str, contender: str, study: int | None) -> list[Trial]:
    """The sweep's trials that trained to their end (completed or diverged), with their runs."""
    from optlab.sweep.build import recorded_spec
    from optlab.sweep.outputs import RUN_DIRS_SEPARATOR, assignment_of_row, read_trial_rows
    from optlab.sweep.space import to_overrides

    space = recorded_spec(sweep_dir).space
    trials = []
    for row in read_trial_rows(sweep_dir):
        if row.get("state") != "COMPLETE" or row.get("status") not in FINISHED:
            continue
        run_dir = Path(sweep_dir) / row["run_dirs"].split(RUN_DIRS_SEPARATOR)[0]
        config = _read_yaml(run_dir / "config.yaml")
        trials.append(Trial(workload, contender, study, int(row["number"]), int(config["trainer"]["seed"]),
                            tuple(to_overrides(space, assignment_of_row(space, row))), run_dir, row["status"],
                            tuple(rows_of(run_dir)), int(config["trainer"]["epochs"])))
    return trials


def _read_yaml(path: Path) -> dict:
    from optlab import safe_yaml
    from optlab.errors import DataError

    return safe_yaml.load_file(path, DataError)


def study_best(trials: list[Trial], w: Workload, epochs: int) -> float:
    """The best value over a study's trials, each at its best epoch among the first `epochs`."""
    values = [v for v in (value_at(t.rows[:epochs], w.metric, "best", w.maximize) for t in trials)
              if math.isfinite(v)]
    if not values:
        return math.nan
    return max(values) if w.maximize else min(values)


def by_study(trials: list[Trial]) -> dict[int, list[Trial]]:
    out: dict[int, list[Trial]] = {}
    for t in trials:
        out.setdefault(t.study, []).append(t)
    return dict(sorted(out.items()))


def auto_target(spec: ComparisonSpec, w: Workload, trials: list[Trial]) -> tuple[float, str]:
    """(the target, the contender that set it): the best contender's median study best."""
    epochs = max(1, math.ceil(w.epochs * spec.protocol.target_share))
    medians = {}
    for c in spec.contenders:
        mine = [t for t in trials if t.workload == w.name and t.contender == c.name]
        bests = [study_best(group, w, epochs) for group in by_study(mine).values()]
        bests = [b for b in bests if math.isfinite(b)]
        if bests:
            medians[c.name] = statistics.median(bests)
    if not medians:
        return math.nan, ""
    pick = max if w.maximize else min
    best = pick(medians, key=lambda name: medians[name])
    return float(medians[best]), best


def study_times(trials: list[Trial], w: Workload, target: float, studies: int) -> list[float]:
    """Per study, its fastest trial's steps to the target (inf when none reached it)."""
    grouped = by_study(trials)
    return [min((time_to_target(t.rows, w.metric, target, w.maximize, t.epochs).steps for t in grouped.get(s, [])),
                default=math.inf) for s in range(studies)]


def median_time(times: list[float]) -> float:
    return float(statistics.median(times)) if times else math.inf


def chosen(trials: list[Trial], w: Workload, target: float, at: str) -> Trial | None:
    """The trial whose setting the reruns train (see the top of this module)."""
    def key(t: Trial):
        value = value_at(t.rows, w.metric, at, w.maximize)
        reach = time_to_target(t.rows, w.metric, target, w.maximize, t.epochs) if math.isfinite(target) else None
        return (-value if w.maximize else value, reach.steps if reach else 0.0, t.study, t.overrides)

    finite = [t for t in trials if math.isfinite(value_at(t.rows, w.metric, at, w.maximize))]
    return min(finite, key=key) if finite else None


def budget(trials: list[Trial]) -> dict:
    """Runs, epochs budgeted and epochs trained, counted from the trials' run folders."""
    done = [_summary(t.run_dir).get("epochs_done", 0) for t in trials]
    return {"runs": len(trials), "epochs_budgeted": sum(t.epochs for t in trials), "epochs_trained": int(sum(done))}


def _summary(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
