"""One sweep from start to end: spec -> its folder, storage and study -> the study's
fingerprint and budget claimed, sweep.json -> the workers -> trials.csv and best.yaml.

trials.csv and best.yaml are kept current while the workers run: after each trial of the
worker in this process, on each tick of the pool of spawned ones, and once more at the end.
The caller is handed the rows each time, to show them; it writes nothing.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optlab.errors import ConfigError, Interrupted, StorageUnreachable
from optlab.sweep.outputs import best_trial, trial_rows, write_outputs, write_sweep_json
from optlab.sweep.spec import SweepSpec
from optlab.sweep.study import (
    GRACE_S,
    HEARTBEAT_S,
    claim_study,
    open_study,
    quiet_optuna,
    new_sweep_session,
    settle_budget,
)

OnRows = Callable[[list[dict]], None]


@dataclass(frozen=True)
class RunOptions:
    """How this process runs the sweep; none of it is part of what the study is."""

    storage: str | None = None  # an SQLAlchemy URL, over the spec's own
    extend: int | None = None   # run to N more trials than the study's last budget
    heartbeat: int = HEARTBEAT_S
    grace: int = GRACE_S
    launcher: str = "local"     # local | slurm: which default storage (storage.default_storage)
    storage_timeout: float | None = None  # seconds an outage is waited out (sweep/outage.py; None: its default)

    def __post_init__(self):
        if self.extend is not None and self.extend < 1:
            raise ConfigError(f"--extend {self.extend}: must be >= 1 (trials to add)")
        for flag, value in (("--heartbeat", self.heartbeat), ("--grace", self.grace)):
            if value < 1:
                raise ConfigError(f"{flag} {value}: must be >= 1 second")
        if self.grace <= self.heartbeat:
            raise ConfigError(f"--grace {self.grace}: must be more than --heartbeat ({self.heartbeat} s), or a live "
                              "trial counts as dead between two heartbeats")
        if self.storage_timeout is not None and not self.storage_timeout > 0:
            raise ConfigError(f"--storage-timeout {self.storage_timeout:g}: must be > 0 seconds")


@dataclass(frozen=True)
class StartedSweep:
    spec: SweepSpec  # with the budget this run works to
    sweep_dir: Path
    storage_url: str
    study: Any
    device: str      # the base config's trainer.device, which places the workers


@dataclass(frozen=True)
class Outcome:
    rows: list[dict]                     # trials.csv's rows, as last written
    code: int                            # 0, or the exit code the workers ended with
    best: Any                            # the best completed trial, or None
    stopped: Interrupted | None = None   # the signal that stopped the worker in this process


def start_sweep(spec: SweepSpec, options: RunOptions) -> StartedSweep:
    """The sweep folder and study, claimed for this spec (a study of other settings is
    refused), the budget settled, and sweep.json written."""
    from optlab.config.compose import shared_composer
    from optlab.runs.files import make_dirs
    from optlab.sweep.storage import default_storage, open_storage

    new_sweep_session()  # this command's id, before any worker starts (they inherit it): study.record_failure
    if options.storage_timeout is not None:  # read by this process, its spawned workers and Slurm tasks alike
        import os

        from optlab.sweep.outage import TIMEOUT_ENV

        os.environ[TIMEOUT_ENV] = f"{options.storage_timeout:g}"
    base_cfg = shared_composer(spec.config_dir)(spec.base)
    if options.launcher == "local":  # a login node may lack the GPUs of a Slurm job's nodes: those workers check
        from optlab.training.build import resolve_device

        resolve_device(str(base_cfg.trainer.device))
    sweep_dir = make_dirs(Path(str(base_cfg.trainer.out_dir)) / "sweeps" / spec.study)
    url = options.storage or spec.storage or default_storage(sweep_dir, options.launcher)
    quiet_optuna()
    study = open_study(spec, open_storage(url))
    claim_study(study, spec, base_cfg, str(sweep_dir))
    spec = settle_budget(study, spec, options.extend)
    write_sweep_json(spec, sweep_dir, url)
    return StartedSweep(spec, sweep_dir, url, study, str(base_cfg.trainer.device))


def run_workers(sweep: StartedSweep, options: RunOptions, on_rows: OnRows) -> Outcome:
    """Run the workers to the budget (one in this process, or a pool of spawned ones)."""
    from optlab.sweep.workers import WorkerPool, run_in_process

    jobs = worker_args(sweep, options)
    keeper = OutputsKeeper(sweep, on_rows)
    keeper.update()
    code, stopped = 0, None
    if len(jobs) > 1:
        code = WorkerPool(jobs).run(tick=keeper.update)
    else:
        try:
            run_in_process(jobs[0], after_trial=keeper.update)
        except Interrupted as exc:
            keeper.update()
            code, stopped = exc.exit_code, exc
    rows = write_outputs(sweep.study, sweep.spec, sweep.sweep_dir)
    return Outcome(rows, code, best_trial(sweep.study, sweep.spec), stopped)


def worker_args(sweep: StartedSweep, options: RunOptions) -> list:
    """One WorkerArgs per worker, placed by workers.plan."""
    from optlab.sweep.workers import WorkerArgs, available_cores, plan, visible_gpus

    spec = sweep.spec
    placements = plan(spec.jobs, spec.per_gpu, visible_gpus(sweep.device), available_cores())
    return [WorkerArgs(spec, sweep.sweep_dir, sweep.storage_url, p, options.heartbeat, options.grace)
            for p in placements]


class OutputsKeeper:
    """Rewrites trials.csv and best.yaml when the study's rows changed since the last write,
    then hands the rows to on_rows."""

    def __init__(self, sweep: StartedSweep, on_rows: OnRows):
        self.sweep, self.on_rows = sweep, on_rows
        self.written: list[dict] | None = None

    def update(self) -> None:
        study, spec = self.sweep.study, self.sweep.spec
        try:
            rows = trial_rows(study, spec)
        except StorageUnreachable:  # the workers say so and stop; the view keeps its last rows
            return
        if rows != self.written:
            rows = self.written = write_outputs(study, spec, self.sweep.sweep_dir)
        self.on_rows(rows)
