"""A sweep worker that trains its trials as populations (`--population K`).

The worker asks the sampler for trials in batches (up to K runs at once, within the
budget), composes each trial's runs (one per seed), groups them by structure
(optlab.training.population.structure) and trains one structure's runs as a population.
Every run is a member that reports every epoch to its own trial, so the pruner judges each
separately. When a member's run ends (completed, pruned, diverged, failed), its slot takes
the next run of the same structure at the next epoch boundary: a waiting run, or a new
trial; a trial of another structure waits for the next population. A trial ends when all
its runs have; its value is their mean, as in a solo sweep. While it holds trials the worker
records their heartbeats on a thread of its own (the trials never pass through
study.optimize, whose heartbeat covers one trial). A run the engine cannot vectorize trains
alone, with a line saying why; a signal stops every run at a step boundary and queues its
trial's configuration again, as in a solo sweep.
"""
from __future__ import annotations

import os
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from optlab.errors import Interrupted, OptlabError, StorageError
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
    run_dirs: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.statuses) == self.runs


@dataclass
class RunJob:
    """One run of a held trial, waiting for a slot."""

    held: HeldTrial
    seed_index: int
    cfg: object
    reporter: PruneReporter | None = None


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
    """The trials of one worker, trained K runs at a time per structure."""

    def __init__(self, worker, study, storage):
        self.worker, self.study, self.spec = worker, study, worker.spec
        self.size = worker.spec.population
        self.heartbeats = Heartbeats(storage, worker.heartbeat)
        self.waiting: dict[str, deque[RunJob]] = {}
        self.population = None
        self.slots: list[RunJob | None] = []
        self.objective = Objective(self.spec, worker.sweep_dir, worker.placement)
        self.told = False

    def run(self, started: float) -> None:
        """Populations until the budget is spent and every held trial is told; while other
        workers' trials fill the budget, it waits for them as a solo worker does."""
        room = lambda: self.worker.room(self.study, started)  # noqa: E731
        try:
            while True:
                if self.population is None and not self._start_population(room):
                    self._show_outputs()
                    if not self.worker._should_continue(self.study, started):
                        return
                    continue
                self._train_epoch(room)
                self._show_outputs()
        except (Interrupted, StorageError) as exc:
            self._stop_all(exc)
            raise
        finally:
            self.heartbeats.close()

    # ------------------------------------------------------------ trials

    def _ask_batch(self, wanted: int, room: int) -> None:
        """Up to `wanted` new trials (the budget has `room` left), their runs waiting by
        structure. One look at the study after asking tells which trials another worker's
        started first made surplus."""
        trials = [self.study.ask() for _ in range(max(0, min(wanted, room)))]
        for trial in trials:
            self.heartbeats.hold(trial._trial_id)
        ahead = self._ahead_counts([t.number for t in trials])
        for trial in trials:
            if ahead[trial.number] >= self.spec.trials:
                trial.set_user_attr("status", Status.SURPLUS)
                self._tell(trial, Status.FAILED)
            else:
                self._sample(trial)

    def _ahead_counts(self, numbers: list[int]) -> dict[int, int]:
        """Per trial number, the finished or running trials numbered before it (study.ahead_of
        for many trials from one read of the study)."""
        from optlab.sweep.study import is_finished, trial_status

        counted = sorted(t.number for t in self.study.get_trials(deepcopy=False)
                         if is_finished(t) or trial_status(t) == Status.RUNNING)
        return {n: sum(1 for c in counted if c < n) for n in numbers}

    def _sample(self, trial) -> None:
        from optlab.training.population import structure, why_solo

        overrides = to_overrides(self.spec.space, suggest(trial, self.spec.space))
        held = HeldTrial(trial, overrides, self.spec.seeds)
        for key, value in {"status": Status.RUNNING, "overrides": overrides, "worker_pid": os.getpid(),
                           "threads": self.worker.placement.threads, **job_attrs()}.items():
            trial.set_user_attr(key, value)
        cfgs = [self.objective.config(overrides, trial.number, k) for k in range(held.runs)]
        reason = why_solo(cfgs[0])
        if reason:
            print(f"optlab sweep: trial {trial.number} trains alone: {reason}", file=sys.stderr)
            self._run_solo(held)
            return
        for k, cfg in enumerate(cfgs):
            self.waiting.setdefault(structure(cfg), deque()).append(RunJob(held, k, cfg))

    def _run_solo(self, held: HeldTrial) -> None:
        """The solo objective on a trial already asked for (its sample is replayed)."""
        import optuna

        try:
            value = self.objective._run_seeds(held.trial, held.overrides)
            self._tell(held.trial, Status.COMPLETED, value)
        except optuna.TrialPruned:
            self._tell(held.trial, Status.PRUNED)
        except (Interrupted, StorageError):
            raise
        except Exception as exc:
            held.trial.set_user_attr("status", Status.FAILED)
            held.trial.set_user_attr("error", " ".join(str(exc).split())[:500])
            self._tell(held.trial, Status.FAILED)

    def _tell(self, trial, status: Status, value: float | None = None) -> None:
        from optuna.trial import TrialState

        state = {Status.COMPLETED: TrialState.COMPLETE, Status.DIVERGED: TrialState.COMPLETE,
                 Status.PRUNED: TrialState.PRUNED}.get(status, TrialState.FAIL)
        self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        self.heartbeats.release(trial._trial_id)
        self.told = True

    def _show_outputs(self) -> None:
        """trials.csv and the live view, once per population epoch that told trials."""
        if self.told and self.worker.after_trial is not None:
            self.worker.after_trial()
        self.told = False

    def _next_job(self, key: str | None, room) -> RunJob | None:
        """A waiting run of this structure (any, when key is None), asking for a batch of
        trials (as many as the population has places) while the budget has room."""
        while True:
            check_stop()
            job = self._take(key)
            if job is not None:
                return job
            left = room()
            if left <= 0:
                return None
            self._ask_batch(self._places(), left)

    def _places(self) -> int:
        """How many runs the population could take now (all of them before it starts)."""
        free = self.size if self.population is None else sum(job is None for job in self.slots)
        return max(1, -(-free // self.spec.seeds))

    def _take(self, key: str | None) -> RunJob | None:
        if key is None:
            key = max(self.waiting, key=lambda k: len(self.waiting[k]), default=None)
        queue = self.waiting.get(key)
        return queue.popleft() if queue else None

    # ------------------------------------------------------------ populations

    def _start_population(self, room) -> bool:
        from optlab.training.population import Population, structure

        first = self._next_job(None, room)
        if first is None:
            return False
        key, jobs = structure(first.cfg), [first]
        while len(jobs) < self.size:
            job = self._next_job(key, room)
            if job is None:
                break
            jobs.append(job)
        self.slots = list(jobs)
        self.population = Population([j.cfg for j in jobs], self.worker.sweep_dir / "runs",
                                     [self._hook(j) for j in jobs])
        for k, job in enumerate(jobs):
            self._note_run_dir(job, self.population.members[k].run.dir)
        self.key = key
        return True

    def _hook(self, job: RunJob):
        epochs = int(job.cfg.trainer.epochs)
        reporter = PruneReporter(job.held.trial, self.spec, job.seed_index * epochs)
        job.reporter = reporter
        return lambda k, epoch, row: reporter(epoch, row)

    def _note_run_dir(self, job: RunJob, run_dir: Path) -> None:
        job.held.run_dirs.append(os.path.relpath(os.path.abspath(run_dir), os.path.abspath(self.worker.sweep_dir)))
        job.held.trial.set_user_attr("run_dirs", list(job.held.run_dirs))

    def _train_epoch(self, room) -> None:
        from optlab.training.checkpoint import RunFolderWriter
        from optlab.training.population import end_population_epoch, train_population_epoch
        from optlab.training.signals import stop_on_signals

        with stop_on_signals() as signals, RunFolderWriter() as writer:
            train_population_epoch(self.population, signals)
            ended = end_population_epoch(self.population, writer, signals)
        for k in ended:
            self._member_ended(k)
        for k in self._ended_since():  # runs of a pruned trial, stopped beside it
            self._member_ended(k)
        self._refill([k for k, job in enumerate(self.slots) if job is None], room)
        if not any(m.active for m in self.population.members):
            self.population = None

    def _ended_since(self) -> list[int]:
        ended = [k for k, m in enumerate(self.population.members)
                 if m.outcome is not None and not m.reported and self.slots[k] is not None]
        for k in ended:
            self.population.members[k].reported = True
        return ended

    def _member_ended(self, k: int) -> None:
        from optlab.training.population import member_result

        job, member = self.slots[k], self.population.members[k]
        result = member_result(member)
        held = job.held
        held.statuses[job.seed_index] = result.status
        value = job.reporter.run_value(result.summary)
        if value is not None:
            held.values[job.seed_index] = float(value)
        if result.status == Status.FAILED:
            held.errors.append(str(result.summary.get("reason")))
        if result.status == Status.PRUNED:
            self._prune_siblings(held)
        if held.done:
            self._finish(held)
        self.slots[k] = None

    def _prune_siblings(self, held: HeldTrial) -> None:
        """A pruned trial stops all its runs: the ones still waiting never start."""
        for queue in self.waiting.values():
            for job in [j for j in queue if j.held is held]:
                queue.remove(job)
                held.statuses[job.seed_index] = Status.PRUNED
        for k, job in enumerate(self.slots):
            member = self.population.members[k]
            if job is not None and job.held is held and member.active:
                from optlab.training.loop import Outcome

                member.outcome = Outcome(Status.PRUNED, "its trial was pruned")

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

    def _refill(self, free: list[int], room) -> None:
        """Free slots take the next runs of the population's structure, when its batch size
        is the same every epoch (members then start their first epoch beside later ones)."""
        if not free or not self._refillable():
            return
        for k in free:
            job = self._next_job(self.key, room)
            if job is None:
                return
            self.population.replace(k, job.cfg, self._hook(job))
            self.slots[k] = job
            self._note_run_dir(job, self.population.members[k].run.dir)

    def _refillable(self) -> bool:
        parts = self.population.members[0].parts
        return len({parts.batch_size(e) for e in range(parts.epochs)}) == 1

    def _stop_all(self, exc: Exception) -> None:
        """A signal or a refused write: every held trial is queued again, as in a solo sweep."""
        stopped = "interrupted by a signal" if isinstance(exc, Interrupted) else str(exc)
        held = {id(j.held): j.held for j in self.slots if j is not None}
        held.update({id(j.held): j.held for q in self.waiting.values() for j in q})
        for h in held.values():
            if self.population is not None:
                for k, job in enumerate(self.slots):
                    if job is not None and job.held is h:
                        self._close_member(k, exc)
            h.trial.set_user_attr("status", Status.INTERRUPTED)
            h.trial.set_user_attr("error", f"{stopped}; queued again: rerun the same `optlab sweep` command to "
                                           f"continue the sweep")
            requeue(self.study, h.trial)
            self._tell(h.trial, Status.INTERRUPTED)

    def _close_member(self, k: int, exc: Exception) -> None:
        from optlab.training.loop import Outcome
        from optlab.training.population import member_result

        member = self.population.members[k]
        if member.active:
            member.outcome = Outcome(Status.INTERRUPTED, str(exc), exc if isinstance(exc, OptlabError) else None)
            member_result(member)


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
    trials = PopulationTrials(worker, study, storage)

    trials.run(started)
