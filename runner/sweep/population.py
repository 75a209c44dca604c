"""A sweep worker that trains its trials as populations (`--population K`).

The worker hands optlab.training.api.train_many its trials' runs (one per seed) as they are
asked for: train_many asks for more runs whenever a population has room (its `more`), and
this worker asks the sampler for that many trials within the budget. train_many groups the
runs by structure, trains up to K at a time, and refills a slot whose run ended at the next
epoch boundary. Every run reports every epoch to its own trial, so the pruner judges each
separately; a pruned run stops its trial's other runs. A trial ends when all its runs have;
its value is their mean, as in a solo sweep. While it holds trials the worker records their
heartbeats on a thread of its own (the trials never pass through study.optimize, whose
heartbeat covers one trial). A signal stops every run at a step boundary with its
checkpoint; each held trial is queued again, and its continuation resumes each run from
its checkpoint, as a solo sweep's does.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from optlab.errors import Interrupted, StorageError
from optlab.runs.folder import read_metric_rows
from optlab.runs.status import Status
from optlab.sweep.objective import Objective, PruneReporter, job_attrs, worst_value
from optlab.sweep.signals import check_stop
from optlab.sweep.space import suggest, to_overrides
from optlab.sweep.storage import requeue


@dataclass
class HeldTrial:
    """A trial this worker has asked for and not yet told."""

    trial: object
    overrides: list[str]
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


class PopulationTrials:
    """The trials of one worker, their runs trained K at a time per structure."""

    def __init__(self, worker, study, storage):
        self.worker, self.study, self.spec = worker, study, worker.spec
        self.size = worker.spec.population
        self.heartbeats = Heartbeats(storage, worker.heartbeat)
        self.objective = Objective(self.spec, worker.sweep_dir, worker.placement)
        self.held: dict[int, HeldTrial] = {}
        self.told = False  # trials told since trials.csv was last rewritten

    def run(self, started: float) -> None:
        """Populations until the budget is spent and every held trial is told; while other
        workers' trials fill the budget, it waits for them as a solo worker does."""
        from optlab.training.api import train_many

        self.room = lambda: self.worker.room(self.study, started)  # noqa: E731
        try:
            while self.worker._should_continue(self.study, started):
                train_many([], population=self.size, run_root=self.worker.sweep_dir / "runs", more=self.more,
                           planned=self.spec.trials * self.spec.seeds)
                self._show_outputs()
        except (Interrupted, StorageError) as exc:
            self._stop_all(exc)
            raise
        finally:
            self.heartbeats.close()

    # ------------------------------------------------------------ asking

    def more(self, places: int) -> list:
        """Runs for up to `places` free places: new trials' runs, within the budget (none
        once it is spent; trials another worker's made surplus are told and replaced)."""
        self._show_outputs()
        while True:
            check_stop()
            left = self.room()
            if left <= 0:
                return []
            trials = [self.study.ask() for _ in range(min(left, max(1, -(-places // self.spec.seeds))))]
            for trial in trials:
                self.heartbeats.hold(trial._trial_id)
            ahead = self._ahead_counts([t.number for t in trials])
            runs = []
            for trial in trials:
                if ahead[trial.number] >= self.spec.trials:
                    trial.set_user_attr("status", Status.SURPLUS)
                    self._tell(trial, Status.FAILED)
                else:
                    runs += self._runs_of(trial)
            if runs:
                return runs

    def _ahead_counts(self, numbers: list[int]) -> dict[int, int]:
        """Per trial number, the finished or running trials numbered before it (study.ahead_of
        for many trials from one read of the study)."""
        from optlab.sweep.study import is_finished, trial_status

        counted = sorted(t.number for t in self.study.get_trials(deepcopy=False)
                         if is_finished(t) or trial_status(t) == Status.RUNNING)
        return {n: sum(1 for c in counted if c < n) for n in numbers}

    def _runs_of(self, trial) -> list:
        """The trial's runs, one per seed; a continued trial resumes each from its checkpoint."""
        from optlab.training.api import RunRequest

        overrides = to_overrides(self.spec.space, suggest(trial, self.spec.space))
        held = self.held[trial.number] = HeldTrial(trial, overrides, self.spec.seeds)
        for key, value in {"status": Status.RUNNING, "overrides": overrides, "worker_pid": os.getpid(),
                           "threads": self.worker.placement.threads, **job_attrs()}.items():
            trial.set_user_attr(key, value)
        for k in range(held.runs):
            cfg = self.objective.config(overrides, trial.number, k)
            reporter = PruneReporter(trial, self.spec, k * int(cfg.trainer.epochs))
            resume_dir = self.objective._resume_dir(trial, k)
            held.requests.append(RunRequest(
                cfg, resume_dir, on_epoch=reporter, on_start=lambda run_dir, k=k, r=reporter: self._started(held, k, r, run_dir),
                on_end=lambda result, k=k, r=reporter: self._ended(held, k, r, result)))
        return list(held.requests)

    # ------------------------------------------------------------ runs

    def _started(self, held: HeldTrial, k: int, reporter: PruneReporter, run_dir: Path) -> None:
        held.run_dirs[k] = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(self.worker.sweep_dir))
        held.trial.set_user_attr("run_dirs", [held.run_dirs[i] for i in sorted(held.run_dirs)])
        if held.requests[k].resume_dir is not None:  # the epochs before the checkpoint count as if run here
            reporter.replay(read_metric_rows(run_dir))

    def _ended(self, held: HeldTrial, k: int, reporter: PruneReporter, result) -> None:
        if result.status == Status.INTERRUPTED:
            return  # the trial is queued again with the others held (_stop_all)
        held.statuses[k] = result.status
        value = reporter.run_value(result.summary)
        if value is not None:
            held.values[k] = float(value)
        if result.status == Status.FAILED:
            held.errors.append(str(result.summary.get("reason")))
        if result.status == Status.PRUNED:  # the trial's other runs stop too
            for request in held.requests:
                request.stop = request.stop or "its trial was pruned"
        if held.done:
            self._finish(held)

    def _finish(self, held: HeldTrial) -> None:
        """The trial's value and state from its runs, as the solo objective gives them."""
        trial, statuses = held.trial, set(held.statuses.values())
        trial.set_user_attr("seed_values", [held.values[k] for k in sorted(held.values)])
        if Status.DIVERGED in statuses:
            trial.set_user_attr("status", Status.DIVERGED)
            self._tell(trial, Status.DIVERGED, worst_value(self.spec.metric, self.spec.direction))
        elif Status.PRUNED in statuses:
            trial.set_user_attr("status", Status.PRUNED)
            self._tell(trial, Status.PRUNED)
        elif statuses != {Status.COMPLETED} or len(held.values) < held.runs:
            trial.set_user_attr("status", Status.FAILED)
            trial.set_user_attr("error", "; ".join(held.errors)[:500] or f"a run reported no finite {self.spec.metric}")
            self._tell(trial, Status.FAILED)
        else:
            trial.set_user_attr("status", Status.COMPLETED)
            self._tell(trial, Status.COMPLETED, sum(held.values.values()) / len(held.values))
        del self.held[trial.number]
        self.told = True

    def _show_outputs(self) -> None:
        """trials.csv and the live view, once for the trials told since (members end together
        at an epoch's end: one rewrite, not one per trial)."""
        if self.told and self.worker.after_trial is not None:
            self.worker.after_trial()
        self.told = False

    def _tell(self, trial, status: Status, value: float | None = None) -> None:
        from optuna.trial import TrialState

        state = {Status.COMPLETED: TrialState.COMPLETE, Status.DIVERGED: TrialState.COMPLETE,
                 Status.PRUNED: TrialState.PRUNED}.get(status, TrialState.FAIL)
        self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        self.heartbeats.release(trial._trial_id)

    def _stop_all(self, exc: Exception) -> None:
        """A signal or a refused write: every held trial is queued again, as in a solo sweep;
        after a signal its continuation resumes each run from its checkpoint."""
        stopped = "interrupted by a signal" if isinstance(exc, Interrupted) else str(exc)
        for held in list(self.held.values()):
            held.trial.set_user_attr("status", Status.INTERRUPTED)
            how = ("the next Slurm worker resumes it from its checkpoint" if job_attrs() else
                   "rerun the same `optlab sweep` command to continue the sweep")
            held.trial.set_user_attr("error", f"{stopped}; queued again: {how}")
            requeue(self.study, held.trial, resume=isinstance(exc, Interrupted))
            self._tell(held.trial, Status.INTERRUPTED)


def run_population_worker(worker) -> None:
    """The worker loop of a population sweep (Worker.run, for spec.population > 1)."""
    from optlab.sweep.storage import open_storage
    from optlab.sweep.study import make_pruner, make_sampler, open_study, quiet_optuna
    from optlab.sweep.workers import warm_up

    quiet_optuna()
    storage = open_storage(worker.storage_url, heartbeat=worker.heartbeat, grace=worker.grace,
                           on_stale=worker.on_stale_trial)
    seed = None if worker.spec.seed is None else worker.spec.seed + worker.placement.worker
    study = open_study(worker.spec, storage, make_sampler(worker.spec, seed), make_pruner(worker.spec))
    warm_up(worker.spec)
    started = worker.clock()
    PopulationTrials(worker, study, storage).run(started)
