"""optlab's Python API: the commands as functions that return Python objects.

    import optlab
    run = optlab.train(["optimizer=adam", "trainer.epochs=5"])
    run.metrics                      # metrics.csv as a pandas DataFrame
    optlab.report([run.run_dir]).groups

Each function runs the code of its command (`optlab train`, `optlab train -m --population`,
`optlab sweep`, `optlab report`, `optlab study run`) and writes the same folders; it prints
no tables and returns what they would show. Errors are `optlab.OptlabError`s with the
command's exit code (`.exit_code`); a run that diverges or runs out of memory is returned
with its status, as a grid of runs returns it. Heavy modules (torch, pandas, Optuna) are
imported by the calls, never by `import optlab`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

__all__ = ["RunResult", "SweepResult", "ReportResult", "StudyResult",
           "compose", "train", "train_many", "sweep", "report", "study"]

Config = Union["DictConfig", dict, Sequence[str], None]  # a composed config, or overrides to compose


@dataclass(frozen=True)
class RunResult:
    """One run: its folder, its status (completed, diverged, pruned, ...), summary.json and
    metrics.csv (one row per epoch)."""

    run_dir: Path
    status: str
    summary: dict
    metrics: pd.DataFrame


@dataclass(frozen=True)
class SweepResult:
    """A sweep: its folder, trials.csv (one row per trial) and the best trial's row (None
    when no trial completed)."""

    sweep_dir: Path
    trials: pd.DataFrame
    best: dict | None


@dataclass(frozen=True)
class ReportResult:
    """What `optlab report` shows and writes: report.csv's groups (one row per group, best
    first) and runs.csv's runs (every config key and summary number per run)."""

    groups: pd.DataFrame
    runs: pd.DataFrame
    metric: str  # the column the numbers are of, and at which epoch: "val_acc (final epoch)"


@dataclass(frozen=True)
class StudyResult:
    """A study: its folder, its verdict (reproduced, not_reproduced, inconclusive), each
    criterion with its effect, table.csv (per measure and arm) and runs.csv."""

    folder: Path
    verdict: str
    criteria: list[dict]
    table: pd.DataFrame
    runs: pd.DataFrame


def compose(overrides: Sequence[str] = (), config_dir: str | None = None) -> DictConfig:
    """The run config for these overrides, as `optlab train --cfg` composes and checks it:
    `compose(["model=cnn", "optimizer.lr=0.01"])`. `config_dir` adds your own options."""
    from optlab.config.compose import compose as compose_config

    return compose_config(list(_overrides(overrides)), config_dir)


def train(config: Config = None, *, config_dir: str | None = None) -> RunResult:
    """Train one run, as `optlab train` does: `config` is a list of overrides (None: the
    defaults) or a config from compose(), edited or not (it is checked again)."""
    return _train_configs([_config(config, config_dir)], population=None)[0]


def train_many(configs: Sequence[Config], *, population: int | str | None = None,
               config_dir: str | None = None) -> list[RunResult]:
    """Train several runs, one result per config in the given order. With `population=K`
    (or "auto"), runs of one structure train K at a time as one vectorized population, as
    `optlab train -m ... --population K` does; runs that cannot share one train alone."""
    from optlab.sweep.spec import population_size

    cfgs = [_config(c, config_dir) for c in configs]
    return _train_configs(cfgs, population=population_size(population))


def sweep(file: str, overrides: Sequence[str] = (), *, trials: int | None = None, storage: str | None = None,
          **settings: Any) -> SweepResult:
    """Run (or continue) the sweep of a sweep file, as `optlab sweep FILE` does: `overrides`
    are added to its base, and `settings` replace the file's: sampler, pruner, study,
    timeout, seeds, seed, jobs, per_gpu, population, scheduler, config_dir."""
    from optlab.errors import ConfigError
    from optlab.sweep.build import build_spec
    from optlab.sweep.outputs import read_trials_table
    from optlab.sweep.run import RunOptions, run_workers, start_sweep

    allowed = {"sampler", "pruner", "study", "timeout", "seeds", "seed", "jobs", "per_gpu", "population", "scheduler",
               "config_dir"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(f"sweep(): unknown setting {', '.join(unknown)}; choose from: {', '.join(sorted(allowed))}")
    spec = build_spec(file, changes={"trials": trials, **settings}, overrides=list(_overrides(overrides)))
    options = RunOptions(storage=storage)
    started = start_sweep(spec, options)
    outcome = run_workers(started, options, on_rows=lambda rows: None)
    if outcome.stopped is not None:
        raise outcome.stopped
    return SweepResult(started.sweep_dir, read_trials_table(started.sweep_dir), _best_row(outcome))


def report(paths: str | Path | Sequence[str | Path], *, by: str | Sequence[str] | None = None,
           metric: str = "val_acc", at: str | None = None, direction: str = "auto",
           target: float | None = None, stats_over: Sequence[str] = ("completed",)) -> ReportResult:
    """The seed-aggregated tables `optlab report PATHS --by ...` computes, for run, sweep or
    parent folders; no folder is written. `by=None` groups by the keys that differ."""
    from optlab import report as reports
    from optlab.errors import DataError

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    collection = reports.load(Path(p) for p in paths)
    if collection.runs.empty:
        raise DataError(f"no readable run folders under {', '.join(map(str, paths))}")
    chosen = reports.resolve_metric(metric, collection, direction, at)
    keys = reports.grouping_keys(by, collection)
    table = reports.aggregate(collection, keys, chosen, target, reports.chosen_statuses(list(stats_over)))
    return ReportResult(table, collection.runs, chosen.label)


def study(name: str, *, quick: bool = False, seeds: int | None = None, population: int | str | None = None,
          out: str | Path = "outputs/studies") -> StudyResult:
    """Run a shipped study (or a study file), reusing its finished runs, as `optlab study
    run NAME` does; `quick=True` checks the pipeline and is never a reproduction."""
    import pandas as pd

    from optlab.study.run import StudyOptions, run_study
    from optlab.study.spec import load_study
    from optlab.sweep.spec import population_size

    options = StudyOptions(quick=quick, seeds=seeds, population=population_size(population), out_root=Path(out))
    verdict = run_study(load_study(name), options)
    folder = Path(verdict["folder"])
    return StudyResult(folder, verdict["verdict"], verdict["criteria"],
                       pd.read_csv(folder / "table.csv"), pd.read_csv(folder / "runs.csv"))


# ---------------------------------------------------------------- the one place runs are trained

def _train_configs(cfgs: list, population: int | None) -> list[RunResult]:
    """Each config trained, alone or K at a time in populations, as `optlab train -m` does
    (optlab.training.api.train_many); results in the order of `cfgs`."""
    from optlab.training.api import train_many

    return [_run_result(result) for result in train_many(cfgs, population=population or 1)]


def _run_result(result) -> RunResult:
    import pandas as pd

    from optlab.report.load import read_metrics

    metrics, _ = read_metrics(Path(result.run_dir) / "metrics.csv")
    return RunResult(Path(result.run_dir), str(result.status), dict(result.summary), pd.DataFrame(metrics))


# ---------------------------------------------------------------- helpers

def _overrides(overrides: Sequence[str]) -> Sequence[str]:
    from optlab.errors import ConfigError

    if isinstance(overrides, str):
        raise ConfigError(f"{overrides!r}: give the overrides as a list of strings, e.g. [{overrides!r}]")
    return overrides


def _config(config: Config, config_dir: str | None) -> DictConfig:
    """A composed config: overrides composed, a given config checked as compose() checks it."""
    from omegaconf import DictConfig, OmegaConf

    from optlab.config.validate import validate

    if config is None or not isinstance(config, (DictConfig, dict)):
        return compose(config or (), config_dir)
    cfg = OmegaConf.create(config) if isinstance(config, dict) else config
    validate(cfg)
    return cfg


def _best_row(outcome) -> dict | None:
    if outcome.best is None:
        return None
    return next((row for row in outcome.rows if row["number"] == outcome.best.number), None)
