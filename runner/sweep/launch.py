"""Where a started sweep's workers run, behind one interface: `local` (processes of this
command, `--jobs`) and `slurm` (one job array, `--workers`, optionally `--wait`).

Each kind checks its own command-line flags and its environment before anything is
started, and launches: the local kind runs the workers here and returns the finished
sweep's outcome; the Slurm kind submits them and returns the job array's id. A new kind (another
scheduler) is one class here and its module beside slurm.py; the command does not change.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from optlab.errors import ConfigError
from optlab.sweep.launcher import Launcher


@dataclass(frozen=True)
class Launched:
    outcome: object = None   # the workers ran here: sweep.run.Outcome (rows, exit code, best trial)
    job: str | None = None   # the workers run elsewhere: the job array's id


class Launch(ABC):
    """One kind of launcher."""

    @abstractmethod
    def check_flags(self, jobs: int | None, workers: int | None, wait: bool) -> None:
        """Refuse the flags of other kinds (one line each)."""

    def check(self, launcher: Launcher) -> None:
        """What must hold before the sweep folder and study are made."""

    @abstractmethod
    def launch(self, sweep, launcher: Launcher, options, workers: int | None,
               on_rows: Callable[[list[dict]], None]) -> Launched:
        """Start the started sweep's workers (sweep.run.StartedSweep)."""


class LocalLaunch(Launch):
    def check_flags(self, jobs: int | None, workers: int | None, wait: bool) -> None:
        if workers is not None or wait:
            raise ConfigError("--workers and --wait: for --launcher slurm; a local sweep uses --jobs")

    def launch(self, sweep, launcher, options, workers, on_rows) -> Launched:
        from optlab.sweep.run import run_workers

        return Launched(outcome=run_workers(sweep, options, on_rows))


class SlurmLaunch(Launch):
    def check_flags(self, jobs: int | None, workers: int | None, wait: bool) -> None:
        if jobs is not None:
            raise ConfigError("--jobs: for local sweeps; with --launcher slurm give --workers (Slurm array tasks)")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers {workers}: must be >= 1")

    def check(self, launcher: Launcher) -> None:
        from optlab.sweep.slurm import check_cluster

        check_cluster(launcher)

    def launch(self, sweep, launcher, options, workers, on_rows) -> Launched:
        from optlab.sweep.slurm import submit

        return Launched(job=submit(sweep, launcher, workers or 1, options.heartbeat, options.grace))


LAUNCHES: dict[str, Launch] = {"local": LocalLaunch(), "slurm": SlurmLaunch()}


def launch_for(launcher: Launcher) -> Launch:
    return LAUNCHES[launcher.kind]
