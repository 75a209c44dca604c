"""One trial: sample, compose base + sample per seed, train each seed's run, report to the pruner."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from optlab.errors import Interrupted, OptlabError, Pruned, StorageError
from optlab.runs.folder import read_metric_rows
from optlab.runs.status import Status
from optlab.sweep.signals import check_stop
from optlab.sweep.space import suggest, to_overrides
from optlab.sweep.spec import SweepSpec
from optlab.sweep.storage import requeue
from optlab.sweep.study import ahead_of, record_failure


class TrialFailed(Exception):
    """An error inside one trial: recorded on the trial (FAIL), the sweep goes on."""


class _Surplus(Exception):
    """Another worker already started the last trial of the budget."""


def worst_value(metric: str, direction: str) -> float:
    """What a diverged trial reports: the worst possible value, so the sampler steers away."""
    if metric.endswith("acc"):
        return 0.0 if direction == "maximize" else 1.0
    return -math.inf if direction == "maximize" else math.inf


@dataclass
class Placement:
    """Where this worker's trials run."""

    worker: int = 0
    threads: int = 1           # trainer.threads=auto's count for this worker's runs
    device: str | None = None  # e.g. cuda:1; None: the config's own trainer.device
    processes: int = 1         # the workers sharing the machine's cores


class PruneReporter:
    """train()'s on_epoch hook: report the metric (step = seed * epochs + epoch), prune; and
    the run's value at the sweep's `at` (its best or its final epoch)."""

    def __init__(self, trial, spec: SweepSpec, offset: int):
        self.trial, self.metric, self.at, self.offset = trial, spec.metric, spec.at, offset
        self.pick = max if spec.direction == "maximize" else min
        self.best: float | None = None
        self.last: float | None = None

    def replay(self, rows: list[dict]) -> None:
        """Epochs a resumed run did before its checkpoint: reported, and counted in the best."""
        for row in rows:
            self.record(int(row["epoch"]), row)

    def record(self, epoch: int, row: dict) -> float | None:
        value = float(row[self.metric])
        if not math.isfinite(value):
            return None
        self.last = value
        self.best = value if self.best is None else self.pick(self.best, value)
        self.trial.report(value, self.offset + epoch)
        return value

    def run_value(self, summary: dict) -> float | None:
        """The finished run's value: its best or final epoch's (summary's final number when no
        epoch was reported); None when it has no finite one."""
        value = self.best if self.at == "best" else self.last
        return value if value is not None else _summary_value(summary, self.metric)

    def __call__(self, epoch: int, row: dict) -> None:
        check_stop()
        value = self.record(epoch, row)
        if value is None:
            return
        if self.trial.should_prune():
            raise Pruned(f"pruned after epoch {epoch}: {self.metric}={value:.4g}")


@dataclass
class Objective:
    """Runs one trial: sample, compose base + sample per seed, train each seed's run."""

    spec: SweepSpec
    sweep_dir: Path
    placement: Placement = field(default_factory=Placement)

    def __post_init__(self):
        from optlab.config.compose import Composer

        self.compose = Composer(self.spec.config_dir)  # trials differ in values: Hydra composes once

    def __call__(self, trial) -> float:
        import optuna

        if ahead_of(trial.study, trial.number) >= self.spec.trials:
            trial.set_user_attr("status", Status.SURPLUS)
            raise _Surplus()
        assignment = suggest(trial, self.spec.space)
        overrides = to_overrides(self.spec.space, assignment)
        for key, value in {"status": Status.RUNNING, "overrides": overrides, "worker_pid": os.getpid(),
                           "threads": self.placement.threads, **job_attrs()}.items():
            trial.set_user_attr(key, value)
        try:
            return self._run_seeds(trial, overrides)
        except optuna.TrialPruned:
            raise
        except (Interrupted, StorageError) as exc:  # not the configuration's fault: it runs again
            stopped = "interrupted by a signal" if isinstance(exc, Interrupted) else str(exc)
            trial.set_user_attr("status", Status.INTERRUPTED)
            how = ("the next Slurm worker resumes it from its checkpoint" if job_attrs() else
                   "rerun the same `optlab sweep` command to continue the sweep")
            trial.set_user_attr("error", f"{stopped}; queued again: {how}")
            requeue(trial.study, trial, resume=isinstance(exc, Interrupted))
            raise
        except Exception as exc:  # one trial's error does not stop the sweep
            text = str(exc) if isinstance(exc, OptlabError) else f"{type(exc).__name__}: {exc}"
            message = " ".join(text.split())[:500]
            trial.set_user_attr("status", Status.FAILED)
            trial.set_user_attr("error", message)
            record_failure(trial, exc)  # a configuration's error: not counted against a later command's budget
            raise TrialFailed(message) from exc

    def _run_seeds(self, trial, overrides: list[str]) -> float:
        import optuna

        values, run_dirs = [], []
        for k in range(self.spec.seeds):
            check_stop()
            status, value = self._run_one(trial, overrides, k, run_dirs)
            if status == Status.DIVERGED:
                trial.set_user_attr("status", Status.DIVERGED)
                return worst_value(self.spec.metric, self.spec.direction)
            values.append(value)
            trial.set_user_attr("seed_values", values)
            if status == Status.PRUNED:
                trial.set_user_attr("status", Status.PRUNED)
                raise optuna.TrialPruned()
        trial.set_user_attr("status", Status.COMPLETED)
        return sum(values) / len(values)

    def _run_one(self, trial, overrides: list[str], k: int, run_dirs: list[str]):
        """Train seed k; its run folder joins the trial's run_dirs as soon as it exists."""
        from optlab.training.api import train

        cfg = self.config(overrides, trial.number, k)
        reporter = PruneReporter(trial, self.spec, k * int(cfg.trainer.epochs))
        resume_dir = self._resume_dir(trial, k)

        def on_start(run_dir: Path) -> None:
            self._add_run_dir(trial, run_dirs, run_dir)
            if resume_dir is not None:  # the epochs before the checkpoint count as if run here
                reporter.replay(read_metric_rows(run_dir))

        result = train(cfg, run_root=self.sweep_dir / "runs", resume_dir=resume_dir, on_epoch=reporter,
                       on_start=on_start)
        if result.status == Status.DIVERGED:
            return Status.DIVERGED, None
        if result.status == Status.FAILED:
            raise result.error or TrialFailed(str(result.summary.get("reason")))
        value = reporter.run_value(result.summary)
        if value is None:
            raise TrialFailed(f"the run reported no finite {self.spec.metric}")
        return result.status, value

    def _resume_dir(self, trial, k: int) -> Path | None:
        """Seed k's run folder of the interrupted trial this one continues (requeue with
        resume), when it is still there; None: a new run folder."""
        resume = trial.user_attrs.get("resume_dirs") or []
        folder = self.sweep_dir / resume[k] if k < len(resume) else None
        return folder if folder is not None and (folder / "summary.json").is_file() else None

    def config(self, overrides: list[str], number: int, k: int):
        """Seed k's run of this trial: base + the trial's values + its name, seed base + k."""
        cfg = self.compose([*self.spec.base, *overrides, *self._fixed(number, k)])
        cfg.trainer.seed = int(cfg.trainer.seed) + k
        return cfg

    def _add_run_dir(self, trial, run_dirs: list[str], run_dir: Path) -> None:
        """Recorded relative to the sweep folder, so the sweep folder can move as a whole."""
        run_dirs.append(os.path.relpath(os.path.abspath(run_dir), os.path.abspath(self.sweep_dir)))
        trial.set_user_attr("run_dirs", run_dirs)

    def _fixed(self, number: int, k: int) -> list[str]:
        fixed = [f"trainer.name=trial{number:04d}-seed{k}", "trainer.progress=false"]
        return fixed + ([f"trainer.device={self.placement.device}"] if self.placement.device else [])


def job_attrs() -> dict:
    """The Slurm job running this trial ({"job": "ARRAYJOB_TASK"} in an array, else the job
    id); nothing outside Slurm."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return {"job": f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"}
    return {"job": env["SLURM_JOB_ID"]} if env.get("SLURM_JOB_ID") else {}


def _summary_value(summary: dict, metric: str) -> float | None:
    value = summary.get(f"final_{metric}")
    return value if isinstance(value, float) and math.isfinite(value) else None
