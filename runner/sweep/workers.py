"""Parallel sweep workers: where each one runs, and real processes to run them.

On CPU the workers share the cores (training/threads.py: trainer.threads=auto gives each
`(cores - 1) // jobs` torch threads, at least 1; an explicit count at most `cores // jobs`), so
workers never oversubscribe. With GPUs each worker is pinned to one
(trainer.device=cuda:<i % gpus>, round-robin), `per_gpu` workers per GPU by default.
Workers are started with multiprocessing's spawn (a fresh interpreter each: no forked
torch or CUDA state), die with their parent (PR_SET_PDEATHSIG on Linux), and turn SIGTERM
into a clean stop of their current trial (at the next step or epoch), which is queued again for the next run.
Every worker, in this process or spawned, and the pool that passes the sweep's signals on to
its workers, follow signals.py's one contract.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from optlab.errors import ConfigError, Interrupted, OptlabError
from optlab.sweep.signals import (
    check_stop,
    install_stop_handlers,
    preemption_signal,
    stop_handlers,
    stop_signal,
)
from optlab.sweep.spec import SweepSpec
from optlab.sweep.storage import open_storage, retry_stale_trial
from optlab.training.threads import resolve as resolve_threads
from optlab.training.threads import share_cores, usable_cores, use_threads
from optlab.sweep.study import (
    GRACE_S,
    HEARTBEAT_S,
    Tally,
    make_pruner,
    make_sampler,
    open_study,
    quiet_optuna,
    tally,
)


@dataclass
class Placement:
    """Where this worker's trials run."""

    worker: int = 0
    threads: int = 1           # trainer.threads=auto's count for this worker's runs
    device: str | None = None  # e.g. cuda:1; None: the config's own trainer.device
    processes: int = 1         # the workers sharing the machine's cores


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
        """Open the study, warm up, and run trials (sweep/trials.py) to the budget; a PBT sweep's
        members in one population (sweep/pbt_worker.py)."""
        if self.spec.scheduler == "pbt":
            from optlab.sweep.pbt_worker import run_pbt_worker

            return run_pbt_worker(self)
        from optlab.sweep.trials import Trials

        quiet_optuna()
        storage = open_storage(self.storage_url, heartbeat=self.heartbeat, grace=self.grace,
                               on_stale=self.on_stale_trial)
        seed = None if self.spec.seed is None else self.spec.seed + self.placement.worker
        study = open_study(self.spec, storage, make_sampler(self.spec, seed), make_pruner(self.spec))
        warm_up(self.spec)
        Trials(self, study, storage).run(self.clock())

    def _should_continue(self, study, started: float) -> bool:
        """Whether to start another trial. While the budget is taken by running trials it
        waits; each of those either shows life (a heartbeat within the grace period) or is
        failed by the stale check, so no wait outlives a dead worker's trial by more than
        the grace period."""
        while True:
            count = self._count(study, started)
            if count is None or count.finished >= self.spec.trials:
                return False
            if count.finished + count.running < self.spec.trials:
                return True
            self.sleep(min(1.0, float(self.heartbeat)))  # the rest are running elsewhere: wait

    def room(self, study, started: float) -> int:
        """How many trials may be asked for now (the budget less finished and running ones;
        none past the timeout or a grid's end), without waiting."""
        count = self._count(study, started)
        return 0 if count is None else self.spec.trials - count.finished - count.running

    def _count(self, study, started: float) -> Tally | None:
        """The study's finished and running trials once stale ones are failed; None when no
        trial may start any more (past the timeout, or the grid is exhausted)."""
        import optuna

        check_stop()
        if self.spec.timeout is not None and self.clock() - started >= self.spec.timeout:
            return None
        optuna.storages.fail_stale_trials(study)
        if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study) \
                and not _retries_waiting(study):  # a dead worker's grid point counts as visited: its retry is queued
            return None
        return tally(study)

    def on_stale_trial(self, study, trial) -> None:
        """A dead worker's trial: see storage.retry_stale_trial."""
        retry_stale_trial(study, trial, self.sweep_dir)


def _retries_waiting(study) -> bool:
    from optuna.trial import TrialState

    return any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))


def warm_up(spec: SweepSpec) -> None:
    """Import the training stack and compose the base config before the first trial (its
    trials then start from that composition), so that a worker's start-up is not counted in
    its first trial's duration; a device this machine lacks stops the worker here (exit 2),
    before any trial fails on it."""
    from optlab.config.compose import shared_composer
    from optlab.training.build import resolve_device

    import optlab.training.api  # noqa: F401

    resolve_device(str(shared_composer(spec.config_dir)(spec.base).trainer.device))


available_cores = usable_cores  # the cores the workers share (training/threads.py)


def visible_gpus(device: str) -> int:
    """GPUs to spread workers over: none when the config names cpu or one fixed cuda:N."""
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan(jobs: int | None, per_gpu: int, gpus: int, cores: int) -> list[Placement]:
    """One Placement per worker: threads on CPU, a GPU (round-robin) when there are GPUs."""
    if jobs is None:
        jobs = gpus * per_gpu if gpus else 1
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be >= 1")
    threads = resolve_threads("auto", cores, jobs)
    return [Placement(worker=i, threads=threads, device=f"cuda:{i % gpus}" if gpus else None, processes=jobs)
            for i in range(jobs)]


@dataclass
class WorkerArgs:
    spec: SweepSpec
    sweep_dir: Path
    storage_url: str
    placement: Placement
    heartbeat: int
    grace: int


def run_in_process(args: WorkerArgs, after_trial: Callable[[], None] | None = None) -> None:
    """One worker in this process (--jobs 1): SIGTERM stops it like a spawned one."""
    _use_threads(args.placement)
    with stop_handlers():
        _worker(args, after_trial).run()


def _worker(args: WorkerArgs, after_trial=None) -> Worker:
    return Worker(args.spec, args.sweep_dir, args.storage_url, args.placement, heartbeat=args.heartbeat,
                  grace=args.grace, after_trial=after_trial)


def _use_threads(placement: Placement) -> None:
    """The worker's runs share the cores with the other workers (trainer.threads)."""
    share_cores(placement.processes)
    use_threads("auto")


def worker_main(args: WorkerArgs) -> None:
    """Entry point of a spawned worker process; its exit code says how it ended."""
    _die_with_parent()
    install_stop_handlers()  # for the life of the process: a signal while it exits is no traceback
    _leave_preemption_to_the_task()
    try:
        _use_threads(args.placement)
        _worker(args).run()
    except Interrupted as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OptlabError as exc:
        print(f"optlab: worker {args.placement.worker}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(exc.exit_code)


def _leave_preemption_to_the_task() -> None:
    """Inside a Slurm job: Slurm sends submitit's preemption signal to every process of the
    task, and its default action kills. The task's own process turns it into a SIGTERM that
    the pool passes on (slurm.run_task), so a spawned worker ignores it."""
    if os.environ.get("SLURM_JOB_ID"):
        signal.signal(preemption_signal(), signal.SIG_IGN)


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGKILL when the sweep process dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(137)
    except (OSError, AttributeError):
        pass


class WorkerPool:
    """N spawned worker processes; SIGINT/SIGTERM to the sweep is passed on to each."""

    def __init__(self, args: list[WorkerArgs]):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.processes = [context.Process(target=worker_main, args=(a,), name=f"optlab-sweep-{a.placement.worker}")
                          for a in args]
        self.signal: int | None = None

    def run(self, tick: Callable[[], None], every: float = 1.0) -> int:
        """Start the workers, call tick() every `every` seconds until all exit; exit code."""
        with stop_handlers(forward=self._forward):
            for p in self.processes:
                p.start()
            while any(p.is_alive() for p in self.processes):
                tick()
                for p in self.processes:
                    p.join(timeout=every / len(self.processes))
            self.signal = stop_signal()
        return self._exit_code()

    def _forward(self, signum: int) -> None:
        for p in self.processes:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    def _exit_code(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        codes = [p.exitcode for p in self.processes if p.exitcode]
        return 0 if not codes else (codes[0] if codes[0] > 0 else 128 - codes[0])
