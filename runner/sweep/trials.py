"""One trial lifecycle for every sweep worker, its runs trained alone or K at a time.

A worker hands optlab.training.api.train_many its trials' runs (one per seed) as they are
asked for: train_many asks for more runs whenever it has room (its `more`), and the worker
asks the sampler for that many trials within the budget: one at a time without
`--population`, as many as a population of K runs has free places with it. Each trial:
- starts: its attributes (status, overrides, worker pid, threads, Slurm job), its runs
  composed (base + its values + its name and seed, from the base composed once), and a
  continued trial's runs resumed from their checkpoints, the epochs before counted;
- runs: each run reports every epoch to the trial, so the pruner judges each separately; a
  run that is pruned or diverges stops the trial's other runs;
- ends: the mean of its seeds' values at the sweep's `at`; diverged (the worst value, so the
  sampler steers away), pruned, or failed with its runs' errors (one line, at most 500
  characters), and the sweep goes on.
A signal or a refused write stops every run at a step with its checkpoint; every trial held
is queued again and its continuation resumes each run from there. While it holds trials the
worker records their heartbeats on a thread of its own.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from optlab import faults
from optlab.errors import Interrupted, OptlabError, Pruned, StorageError
from optlab.runs.folder import read_metric_rows
from optlab.runs.status import Status
from optlab.sweep.outage import dropped_if_taken_over
from optlab.sweep.signals import check_stop
from optlab.sweep.space import suggest, to_overrides
from optlab.sweep.spec import SweepSpec
from optlab.sweep.storage import requeue
from optlab.sweep.study import ahead_counts, record_failure

ERROR_CHARS = 500  # a failed trial's error: one line, cut to this many characters


def worst_value(metric: str, direction: str) -> float:
    """What a diverged trial reports: the worst possible value, so the sampler steers away."""
    if metric.endswith("acc"):
        return 0.0 if direction == "maximize" else 1.0
    return -math.inf if direction == "maximize" else math.inf


def error_line(text: str) -> str:
    return " ".join(str(text).split())[:ERROR_CHARS]


class PruneReporter:
    """A run's on_epoch hook: report the metric (step = seed * epochs + epoch), prune; and
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
class HeldTrial:
    """A trial this worker has asked for and not yet told."""

    trial: object
    runs: int  # seeds: runs whose mean is the trial's value
    values: dict[int, float] = field(default_factory=dict)
    statuses: dict[int, Status] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    run_dirs: dict[int, str] = field(default_factory=dict)
    requests: list = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.statuses) == self.runs


class Heartbeats:
    """Records a heartbeat for every trial held, at once and then every `every` seconds."""

    def __init__(self, storage, every: float):
        self.storage, self.every = storage, every
        self.trial_ids: set[int] = set()
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._beat, name="optlab-heartbeats", daemon=True)
        self.thread.start()

    def hold(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.add(trial_id)
        self.storage.record_heartbeat(trial_id)

    def release(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.discard(trial_id)

    def _beat(self) -> None:
        while not self.stop.wait(self.every):
            with self.lock:
                ids = list(self.trial_ids)
            for trial_id in ids:
                self.storage.record_heartbeat(trial_id)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class Trials:
    """A worker's trials, from the ask to the tell; their runs trained by train_many, up to
    `spec.population` at a time (1: one after another)."""

    def __init__(self, worker, study, storage):
        from optlab.config.compose import shared_composer

        self.worker, self.study, self.spec = worker, study, worker.spec
        self.heartbeats = Heartbeats(storage, worker.heartbeat)
        self.compose = shared_composer(self.spec.config_dir)  # the base composed once; each trial's values on a copy
        self.held: dict[int, HeldTrial] = {}
        self.told = False  # trials told since trials.csv was last rewritten
        self.started = 0.0

    def run(self, started: float) -> None:
        """Trials until the budget is spent and every held trial is told; while other
        workers' trials fill the budget, it waits for them (Worker._should_continue)."""
        from optlab.training.api import train_many

        self.started = started
        try:
            while self.worker._should_continue(self.study, started):
                try:
                    with dropped_if_taken_over():  # paused past the grace period: another worker has its trial
                        train_many([], population=self.spec.population or 1, run_root=self.worker.sweep_dir / "runs",
                                   more=self.more, planned=self.spec.trials * self.spec.seeds, who="optlab sweep")
                    self._requeue_stopped()
                except (Interrupted, StorageError):
                    raise
                except Exception as exc:  # noqa: BLE001  a bug in one trial's runs: told failed, the sweep goes on
                    self._fail_held(exc)
                self._show_outputs()
        except (Interrupted, StorageError) as exc:
            self._stop_all(exc)
            raise
        finally:
            self.heartbeats.close()

    # ------------------------------------------------------------ asking and starting

    def more(self, places: int) -> list:
        """Runs for up to `places` free places: new trials' runs, within the budget (none once
        it is spent; a trial another worker's made surplus is told so and replaced)."""
        self._show_outputs()
        while True:
            check_stop()
            left = self.worker.room(self.study, self.started)
            if left <= 0:
                return []
            faults.hit("sweep.before_ask")
            trials = [self.study.ask() for _ in range(min(left, max(1, -(-places // self.spec.seeds))))]
            for trial in trials:
                self.heartbeats.hold(trial._trial_id)
            ahead = ahead_counts(self.study, [t.number for t in trials])
            runs = []
            for trial in trials:
                if ahead[trial.number] >= self.spec.trials:
                    trial.set_user_attr("status", Status.SURPLUS)
                    self._tell(trial, Status.FAILED)
                else:
                    runs += self._start(trial)
            if runs:
                return runs

    def _start(self, trial) -> list:
        """The trial's attributes, and its runs (one per seed): resumed from their
        checkpoints when it continues an interrupted trial."""
        from optlab.training.api import RunRequest

        overrides = to_overrides(self.spec.space, suggest(trial, self.spec.space))
        held = self.held[trial.number] = HeldTrial(trial, self.spec.seeds)
        for key, value in {"status": Status.RUNNING, "overrides": overrides, "worker_pid": os.getpid(),
                           "threads": self.worker.placement.threads, **job_attrs()}.items():
            trial.set_user_attr(key, value)
        for k in range(held.runs):
            cfg = self.config(overrides, trial.number, k)
            reporter = PruneReporter(trial, self.spec, k * int(cfg.trainer.epochs))
            held.requests.append(RunRequest(
                cfg, self._resume_dir(trial, k), on_epoch=reporter,
                on_start=lambda run_dir, k=k, r=reporter: self._run_started(held, k, r, run_dir),
                on_end=lambda result, k=k, r=reporter: self._run_ended(held, k, r, result)))
        return list(held.requests)

    def config(self, overrides: list[str], number: int, k: int):
        """Seed k's run of trial `number`: base + its values + its name, seed base + k."""
        fixed = [f"trainer.name=trial{number:04d}-seed{k}", "trainer.progress=false"]
        device = self.worker.placement.device
        cfg = self.compose([*self.spec.base, *overrides, *fixed, *([f"trainer.device={device}"] if device else [])])
        cfg.trainer.seed = int(cfg.trainer.seed) + k
        return cfg

    def _resume_dir(self, trial, k: int) -> Path | None:
        """Seed k's run folder of the interrupted trial this one continues (requeue with
        resume), when it is still there; None: a new run folder."""
        resume = trial.user_attrs.get("resume_dirs") or []
        folder = self.worker.sweep_dir / resume[k] if k < len(resume) else None
        return folder if folder is not None and (folder / "summary.json").is_file() else None

    # ------------------------------------------------------------ runs ending, trials told

    def _run_started(self, held: HeldTrial, k: int, reporter: PruneReporter, run_dir: Path) -> None:
        """The run folder joins the trial's run_dirs (relative to the sweep folder, so that
        the folder can move as a whole); a resumed run's earlier epochs count as run here."""
        held.run_dirs[k] = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(self.worker.sweep_dir))
        held.trial.set_user_attr("run_dirs", [held.run_dirs[i] for i in sorted(held.run_dirs)])
        if held.requests[k].resume_dir is not None:
            reporter.replay(read_metric_rows(run_dir))

    def _run_ended(self, held: HeldTrial, k: int, reporter: PruneReporter, result) -> None:
        if result.status == Status.INTERRUPTED:
            return  # the trial is queued again with the others held (_stop_all)
        held.statuses[k] = result.status
        value = reporter.run_value(result.summary)
        if value is not None:
            held.values[k] = float(value)
        if result.status == Status.FAILED:
            held.errors.append(str(result.error or result.summary.get("reason")))
            record_failure(held.trial, result.error)  # a configuration's error: not against a later command's budget
        if result.status in (Status.PRUNED, Status.DIVERGED, Status.FAILED):  # the trial's end is known:
            for request in held.requests:                                      # its other runs stop
                request.stop = request.stop or f"another run of its trial {result.status}"
        if held.done:
            self._finish(held)

    def _finish(self, held: HeldTrial) -> None:
        """The trial's value and state from its runs."""
        trial, statuses = held.trial, set(held.statuses.values())
        trial.set_user_attr("seed_values", [held.values[k] for k in sorted(held.values)])
        if Status.DIVERGED in statuses:
            trial.set_user_attr("status", Status.DIVERGED)
            self._tell(trial, Status.DIVERGED, worst_value(self.spec.metric, self.spec.direction))
        elif Status.FAILED in statuses or (statuses == {Status.COMPLETED} and len(held.values) < held.runs):
            trial.set_user_attr("status", Status.FAILED)
            trial.set_user_attr("error", error_line("; ".join(held.errors))
                                or f"the run reported no finite {self.spec.metric}")
            self._tell(trial, Status.FAILED)
        elif Status.PRUNED in statuses:  # its runs pruned, or stopped beside a pruned one
            trial.set_user_attr("status", Status.PRUNED)
            self._tell(trial, Status.PRUNED)
        else:
            trial.set_user_attr("status", Status.COMPLETED)
            self._tell(trial, Status.COMPLETED, sum(held.values.values()) / len(held.values))

    def _tell(self, trial, status: Status, value: float | None = None) -> None:
        from optuna.trial import TrialState

        state = {Status.COMPLETED: TrialState.COMPLETE, Status.DIVERGED: TrialState.COMPLETE,
                 Status.PRUNED: TrialState.PRUNED}.get(status, TrialState.FAIL)
        self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        self.heartbeats.release(trial._trial_id)
        self.held.pop(trial.number, None)
        self.told = True

    def _show_outputs(self) -> None:
        """trials.csv and the live view, once for the trials told since (a population's
        members end together at an epoch's end: one rewrite, not one per trial)."""
        if self.told and self.worker.after_trial is not None:
            self.worker.after_trial()
        self.told = False

    def _stop_all(self, exc: Exception) -> None:
        """A signal or a refused write: every held trial is queued again; after a signal, its
        continuation resumes each run from its checkpoint."""
        stopped = "interrupted by a signal" if isinstance(exc, Interrupted) else str(exc)
        how = ("the next Slurm worker resumes it from its checkpoint" if job_attrs() else
               "rerun the same `optlab sweep` command to continue the sweep")
        for held in list(self.held.values()):
            held.trial.set_user_attr("status", Status.INTERRUPTED)
            held.trial.set_user_attr("error", f"{stopped}; queued again: {how}")
            requeue(self.study, held.trial, resume=isinstance(exc, Interrupted))
            self._tell(held.trial, Status.INTERRUPTED)

    def _requeue_stopped(self) -> None:
        """Trials still held once train_many is over were stopped with their population when
        one of them was taken over by another worker (dropped_if_taken_over said which): that
        one is another worker's now; the others are queued again to resume their runs."""
        for held in list(self.held.values()):
            if self.study._storage.get_trial(held.trial._trial_id).state.is_finished():
                self.heartbeats.release(held.trial._trial_id)
                self.held.pop(held.trial.number)
            else:
                held.trial.set_user_attr("status", Status.INTERRUPTED)
                held.trial.set_user_attr("error", "stopped with a trial another worker took over; queued again")
                requeue(self.study, held.trial, resume=True)
                self._tell(held.trial, Status.INTERRUPTED)

    def _fail_held(self, exc: Exception) -> None:
        """A bug stopped the runs: the trials held are told failed with its message."""
        text = error_line(str(exc) if isinstance(exc, OptlabError) else f"{type(exc).__name__}: {exc}")
        for held in list(self.held.values()):
            held.trial.set_user_attr("status", Status.FAILED)
            held.trial.set_user_attr("error", text)
            record_failure(held.trial, exc)
            self._tell(held.trial, Status.FAILED)


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
