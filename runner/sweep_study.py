"""The Optuna side of a sweep: study, sampler, pruner, the objective, the worker loop.

Budget. `trials` counts *finished* trials: COMPLETE, PRUNED, and FAIL from an error in the
trial. A trial stopped by SIGTERM, or left RUNNING by a dead worker and failed by the
heartbeat check (runner.sweep_storage), is not finished: its configuration is queued again.
Before starting a trial a worker counts finished + running trials; if that reaches the
budget it waits (for running trials to finish, or to go stale) instead of starting one, and
a trial that turns out to be over the budget after all (two workers deciding at once) is
dropped as `surplus` before it trains. So a rerun of the same command continues to N in
total, across any number of processes and machines.

The fault tests stop a worker at each stage of a trial (runner.faults): before the trial is
created (sweep.before_ask), between its creation and its first heartbeat
(sweep.trial_created, inside study.ask while the sampler runs), inside an epoch
(train.step) and while a file is written.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from runner import faults
from runner.errors import ConfigError, Interrupted, OptlabError, Pruned, StorageError, TrainingFailed
from runner.sweep import SweepSpec, grid_space, suggest, to_overrides
from runner.metrics import close_orphan_run
from runner.sweep_storage import open_storage, requeue

HEARTBEAT_S = 5  # seconds between heartbeats of a running trial
GRACE_S = 20     # a RUNNING trial without a heartbeat for this long belongs to a dead worker

FINISHED = "finished"


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*GridSampler.*")


# ---------------------------------------------------------------- study

def open_study(spec: SweepSpec, storage, sampler=None, pruner=None):
    import optuna

    return optuna.create_study(study_name=spec.study, storage=storage, direction=spec.direction,
                               sampler=sampler, pruner=pruner, load_if_exists=True)


# ---------------------------------------------------------------- what a study is

FINGERPRINT_ATTR, BUDGET_ATTR, SWEEP_ATTR = "optlab.fingerprint", "optlab.trials", "optlab.sweep"


def fingerprint(spec: SweepSpec, base_cfg) -> dict:
    """What defines a study's trials, as flat key -> JSON text: the composed base config
    (keys that do not change what a run learns aside), the space, the metric and direction,
    the seeds, sampler and pruner. The budget, workers, timeout and storage are not in it."""
    from runner.config import as_plain, flatten, is_bookkeeping

    settings = {"metric": spec.metric, "direction": spec.direction, "seeds": spec.seeds, "sampler": spec.sampler,
                "pruner": spec.pruner, "grid_points": spec.grid_points,
                "space": {p.name: p.raw() for p in spec.space}}
    config = {k: v for k, v in flatten(as_plain(base_cfg)) if not is_bookkeeping(k)}
    flat = {**dict(flatten(settings)), **{f"base {k}": v for k, v in config.items()}}
    return {k: json.dumps(v, sort_keys=True) for k, v in flat.items()}


def claim_study(study, spec: SweepSpec, base_cfg, where: str) -> None:
    """A new study takes this sweep's fingerprint; an existing one must have the same, so a
    rerun (or another machine's worker) never mixes trials of other settings into it."""
    new = fingerprint(spec, base_cfg)
    old = study.user_attrs.get(FINGERPRINT_ATTR)
    if old is None:
        study.set_user_attr(FINGERPRINT_ATTR, new)
        study.set_user_attr(SWEEP_ATTR, spec.source_text or json.dumps(spec.to_json(), indent=2))
        study.set_metric_names([spec.metric])
        return
    changed = [f"{k} {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}"
               for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if changed:
        shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise ConfigError(f"study '{spec.study}' ({where}) was created with other settings: {shown}. "
                          f"Start a new study with --study NEW_NAME, or rerun with its settings "
                          f"(--extend N adds N trials to it)")


def settle_budget(study, spec: SweepSpec, extend: int | None) -> SweepSpec:
    """The budget this run works to: the command's, or with --extend N the study's last
    budget plus N. Recorded on the study for the next --extend."""
    from dataclasses import replace

    trials = spec.trials
    if extend is not None:
        recorded = study.user_attrs.get(BUDGET_ATTR)
        if recorded is None:
            raise ConfigError(f"--extend {extend}: study '{spec.study}' has no budget to extend yet; run it first")
        trials = int(recorded) + extend
    study.set_user_attr(BUDGET_ATTR, trials)
    return replace(spec, trials=trials)


def make_sampler(spec: SweepSpec, seed: int | None):
    import optuna.samplers as s

    if spec.sampler == "random":
        return s.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return s.GridSampler(grid_space(spec), seed=seed)
    if spec.sampler == "tpe":
        startup = max(3, min(10, spec.trials // 4))
        return s.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, group=True,
                            constant_liar=True)
    if spec.sampler == "gp":
        return s.GPSampler(seed=seed)
    if spec.sampler == "qmc":
        return s.QMCSampler(seed=seed, scramble=True)
    try:
        import cmaes  # noqa: F401  (CmaEsSampler needs it)
    except ImportError:
        raise ConfigError("sampler 'cmaes' needs the cmaes package: pip install cmaes") from None
    return s.CmaEsSampler(seed=seed)


def make_pruner(spec: SweepSpec):
    import optuna.pruners as p

    return {
        "none": lambda: p.NopPruner(),
        "median": lambda: p.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
        "successive_halving": lambda: p.SuccessiveHalvingPruner(),
        "hyperband": lambda: p.HyperbandPruner(min_resource=1),
    }[spec.pruner]()


# ---------------------------------------------------------------- counting the budget

def trial_status(trial) -> str:
    """completed | diverged | pruned | failed | running | interrupted | surplus | waiting."""
    from optuna.trial import TrialState

    status = trial.user_attrs.get("status")
    if trial.state == TrialState.COMPLETE:
        return status if status in ("completed", "diverged") else "completed"
    if trial.state == TrialState.PRUNED:
        return "pruned"
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.WAITING:
        return "waiting"
    return status if status in ("failed", "surplus") else "interrupted"


def is_finished(trial) -> bool:
    return trial_status(trial) in ("completed", "diverged", "pruned", "failed")


@dataclass
class Tally:
    finished: int
    running: int


def tally(study) -> Tally:
    trials = study.get_trials(deepcopy=False)
    return Tally(sum(is_finished(t) for t in trials), sum(trial_status(t) == "running" for t in trials))


def ahead_of(study, number: int) -> int:
    """Finished or running trials numbered before this one (it runs only if < budget)."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.number < number and (is_finished(t) or trial_status(t) == "running"))


# ---------------------------------------------------------------- the objective

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
    threads: int = 1
    device: str | None = None  # e.g. cuda:1; None: the config's own trainer.device


class PruneReporter:
    """train()'s on_epoch hook: report the metric (step = seed * epochs + epoch), prune."""

    def __init__(self, trial, metric: str, direction: str, offset: int):
        self.trial, self.metric, self.offset = trial, metric, offset
        self.pick = max if direction == "maximize" else min
        self.best: float | None = None

    def __call__(self, epoch: int, row: dict) -> None:
        check_stop()
        value = float(row[self.metric])
        if not math.isfinite(value):
            return
        self.best = value if self.best is None else self.pick(self.best, value)
        self.trial.report(value, self.offset + epoch)
        if self.trial.should_prune():
            raise Pruned(f"pruned after epoch {epoch}: {self.metric}={value:.4g}")


@dataclass
class Objective:
    """Runs one trial: sample, compose base + sample per seed, train each seed's run."""

    spec: SweepSpec
    sweep_dir: Path
    placement: Placement = field(default_factory=Placement)

    def __call__(self, trial) -> float:
        import optuna

        if ahead_of(trial.study, trial.number) >= self.spec.trials:
            trial.set_user_attr("status", "surplus")
            raise _Surplus()
        assignment = suggest(trial, self.spec.space)
        overrides = to_overrides(self.spec.space, assignment)
        for key, value in {"status": "running", "overrides": overrides, "worker_pid": os.getpid(),
                           "threads": self.placement.threads}.items():
            trial.set_user_attr(key, value)
        try:
            return self._run_seeds(trial, overrides)
        except optuna.TrialPruned:
            raise
        except (Interrupted, StorageError) as exc:  # not the configuration's fault: it runs again
            stopped = "interrupted by a signal" if isinstance(exc, Interrupted) else str(exc)
            trial.set_user_attr("status", "interrupted")
            trial.set_user_attr("error", f"{stopped}; queued again: rerun the same `optlab sweep` command to "
                                         f"continue the sweep")
            requeue(trial.study, trial)
            raise
        except Exception as exc:  # one trial's error does not stop the sweep
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            if isinstance(exc, OptlabError):
                message = " ".join(str(exc).split())[:500]
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("error", message)
            raise TrialFailed(message) from exc

    def _run_seeds(self, trial, overrides: list[str]) -> float:
        import optuna

        values, run_dirs = [], []
        for k in range(self.spec.seeds):
            check_stop()
            status, value = self._run_one(trial, overrides, k, run_dirs)
            if status == "diverged":
                trial.set_user_attr("status", "diverged")
                return worst_value(self.spec.metric, self.spec.direction)
            values.append(value)
            trial.set_user_attr("seed_values", values)
            if status == "pruned":
                trial.set_user_attr("status", "pruned")
                raise optuna.TrialPruned()
        trial.set_user_attr("status", "completed")
        return sum(values) / len(values)

    def _run_one(self, trial, overrides: list[str], k: int, run_dirs: list[str]):
        """Train seed k; its run folder joins the trial's run_dirs as soon as it exists."""
        from runner.config import compose
        from runner.train import train

        cfg = compose([*self.spec.base, *overrides, *self._fixed(trial.number, k)], self.spec.config_dir)
        cfg.trainer.seed = int(cfg.trainer.seed) + k
        reporter = PruneReporter(trial, self.spec.metric, self.spec.direction, k * int(cfg.trainer.epochs))
        try:
            result = train(cfg, run_root=self.sweep_dir / "runs", on_epoch=reporter,
                           on_start=lambda run_dir: self._add_run_dir(trial, run_dirs, run_dir))
        except TrainingFailed as exc:
            if exc.result is None or exc.result.status != "diverged":
                raise
            return "diverged", None
        value = reporter.best if reporter.best is not None else _summary_value(result.summary, self.spec.metric)
        if value is None:
            raise TrialFailed(f"the run reported no finite {self.spec.metric}")
        return result.status, value

    def _add_run_dir(self, trial, run_dirs: list[str], run_dir: Path) -> None:
        """Recorded relative to the sweep folder, so the sweep folder can move as a whole."""
        run_dirs.append(os.path.relpath(os.path.abspath(run_dir), os.path.abspath(self.sweep_dir)))
        trial.set_user_attr("run_dirs", run_dirs)

    def _fixed(self, number: int, k: int) -> list[str]:
        fixed = [f"trainer.name=trial{number:04d}-seed{k}", "trainer.progress=false"]
        return fixed + ([f"trainer.device={self.placement.device}"] if self.placement.device else [])


def _summary_value(summary: dict, metric: str) -> float | None:
    value = summary.get(f"final_{metric}")
    return value if isinstance(value, float) and math.isfinite(value) else None


# ---------------------------------------------------------------- the worker loop

@dataclass
class Worker:
    """Runs trials until the study holds `trials` finished ones (or the timeout passes)."""

    spec: SweepSpec
    sweep_dir: Path
    storage_url: str
    placement: Placement = field(default_factory=Placement)
    heartbeat: int = HEARTBEAT_S
    grace: int = GRACE_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    after_trial: Callable[[], None] | None = None

    def run(self) -> None:
        quiet_optuna()
        storage = open_storage(self.storage_url, self.heartbeat, self.grace, on_stale=self.on_stale_trial)
        seed = None if self.spec.seed is None else self.spec.seed + self.placement.worker
        study = open_study(self.spec, storage, make_sampler(self.spec, seed), make_pruner(self.spec))
        objective = Objective(self.spec, self.sweep_dir, self.placement)
        warm_up(self.spec)
        started = self.clock()
        while self._should_continue(study, started):
            faults.hit("sweep.before_ask")
            study.optimize(objective, n_trials=1, catch=(TrialFailed, _Surplus), gc_after_trial=False)
            if self.after_trial is not None:
                self.after_trial()

    def _should_continue(self, study, started: float) -> bool:
        """Whether to start another trial. While the budget is taken by running trials it
        waits; each of those either shows life (a heartbeat within the grace period) or is
        failed by the stale check, so no wait outlives a dead worker's trial by more than
        the grace period."""
        import optuna

        while True:
            check_stop()
            if self.spec.timeout is not None and self.clock() - started >= self.spec.timeout:
                return False
            if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
                return False
            optuna.storages.fail_stale_trials(study)
            count = tally(study)
            if count.finished >= self.spec.trials:
                return False
            if count.finished + count.running < self.spec.trials:
                return True
            self.sleep(min(1.0, float(self.heartbeat)))  # the rest are running elsewhere: wait


    def on_stale_trial(self, study, trial) -> None:
        """A dead worker's trial: run its configuration again, and close the run folders it
        left (temp files removed, a `running` summary marked interrupted)."""
        requeue(study, trial)
        for run in trial.user_attrs.get("run_dirs", []):
            close_orphan_run(self.sweep_dir / run)


def warm_up(spec: SweepSpec) -> None:
    """Import the training stack and compose the base config once before the first trial,
    so that a worker's start-up is not counted in its first trial's duration."""
    from runner.config import compose
    import runner.train  # noqa: F401

    compose(spec.base, spec.config_dir)


_received: list[int] = []


def stop_on_signals() -> dict:
    """SIGINT/SIGTERM set a flag that the worker checks at safe points (before a trial, before
    each run, after each epoch); during training train() handles them itself. Raising from
    the handler instead could land inside Hydra or Optuna, which would record it as an
    ordinary trial error. Returns the previous handlers (for restore_signals)."""
    _received.clear()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda signum, frame: _received.append(signum))
    return previous


def restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def check_stop() -> None:
    if _received:
        raise Interrupted(_received[0])
