"""Sweeps on a Slurm cluster: one job array of workers submitted through submitit, followed and cancelled.

Each array task runs the same ask -> train -> tell worker as a local sweep (--per-gpu and
--population inside the task, as on one machine) on the shared study, so no task waits for
another; the tasks keep trials.csv current themselves. The submitting command returns once
the array is queued (or, with --wait, follows it to the end).

Signals, inside a task:
- SIGTERM (preemption, `scontrol requeue`, scancel): the trial stops at a step boundary, its
  checkpoint is written, and it is queued again to resume from that checkpoint (Objective).
  Slurm requeues the task itself when it preempts or is asked to; after scancel the next
  submission (or a rerun of the command) resumes it.
- submitit's preemption signal (USR2 by default; Slurm sends it `signal_delay_s` before the
  time limit): the same clean stop, then submitit's checkpoint and requeue of this task.
- SIGKILL (node failure, `scancel -s KILL`): nothing runs; the heartbeat check of the other
  workers fails the trial and queues its configuration again.
When the budget is reached, a worker that finds nothing left to do cancels the array's
pending tasks.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optlab.errors import ConfigError, Interrupted
from optlab.sweep.launcher import Launcher
from optlab.sweep.signals import preemption_signal
from optlab.sweep.spec import SweepSpec

LOGS = "slurm"  # submitit's folder in the sweep folder: the job scripts, pickles and logs


def check_cluster(launcher: Launcher) -> None:
    """Before anything is submitted: submitit importable, Slurm answering, the partition known."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("--launcher slurm needs submitit: pip install 'optlab[slurm]'") from None
    if shutil.which("sbatch") is None:
        raise ConfigError("--launcher slurm: sbatch not found; submit from a machine of the Slurm cluster")
    known = partitions()
    if launcher.partition is not None and launcher.partition not in known:
        raise ConfigError(f"launcher.partition={launcher.partition}: no such Slurm partition; "
                          f"choose from: {', '.join(known)}")


def partitions() -> list[str]:
    out = _slurm(["sinfo", "--noheader", "--format=%R"])
    return sorted({line.strip() for line in out.splitlines() if line.strip()})


def _slurm(command: list[str]) -> str:
    done = _call(command)
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[:200] or f"exit code {done.returncode}"
        raise ConfigError(f"{' '.join(command[:2])}: Slurm does not answer ({reason})")
    return done.stdout


def _call(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{command[0]}: Slurm does not answer ({exc})") from None


# ---------------------------------------------------------------- submitting


@dataclass(frozen=True)
class SlurmWorker:
    """What each array task runs (pickled by submitit): workers on the shared study."""

    spec: SweepSpec
    sweep_dir: Path
    storage_url: str
    device: str
    heartbeat: int
    grace: int

    def __call__(self) -> str:
        return run_task(self)

    def checkpoint(self, *args, **kwargs):
        """submitit's requeue hook: the task starts over as it was submitted; the trial it
        stopped resumes from its run folders' checkpoints (queued in the study)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def executor_parameters(launcher: Launcher, study: str) -> dict:
    """The launcher's keys as submitit's AutoExecutor parameters (unset ones left to Slurm)."""
    given = {
        "name": f"optlab-{study}", "timeout_min": launcher.time_min, "nodes": 1, "tasks_per_node": 1,
        "cpus_per_task": launcher.cpus_per_worker, "gpus_per_node": launcher.gpus_per_worker or None,
        "mem_gb": launcher.mem_gb, "slurm_partition": launcher.partition, "slurm_account": launcher.account,
        "slurm_qos": launcher.qos, "slurm_constraint": launcher.constraint,
        "slurm_array_parallelism": launcher.array_parallelism, "slurm_setup": list(launcher.setup) or None,
        "slurm_additional_parameters": dict(launcher.additional_parameters) or None,
        "slurm_signal_delay_s": launcher.signal_delay_s,
    }
    return {k: v for k, v in given.items() if v is not None}


def submit(sweep, launcher: Launcher, workers: int, heartbeat: int, grace: int) -> str:
    """One job array of `workers` tasks for the started sweep; its job id, recorded in sweep.json."""
    import submitit

    executor = submitit.AutoExecutor(folder=sweep.sweep_dir / LOGS, cluster="slurm")
    executor.update_parameters(**executor_parameters(launcher, sweep.spec.study))
    task = SlurmWorker(sweep.spec, Path(sweep.sweep_dir).resolve(), sweep.storage_url, sweep.device, heartbeat, grace)
    try:
        with executor.batch():
            jobs = [executor.submit(task) for _ in range(workers)]
    except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:  # sbatch's refusal, as submitit raises it
        raise ConfigError(f"sbatch refused the job array: {' '.join(str(exc).split())[:300]}") from None
    job_id = jobs[0].job_id.split("_")[0]
    record_submission(sweep.sweep_dir, launcher, workers, job_id)
    return job_id


def record_submission(sweep_dir: Path, launcher: Launcher, workers: int, job_id: str) -> None:
    """sweep.json's `launcher`: every job array submitted for this sweep folder, newest last."""
    from optlab.runs.files import write_atomic
    from optlab.sweep.outputs import read_launcher_record

    path = Path(sweep_dir) / "sweep.json"
    data = json.loads(path.read_text())
    jobs = [*read_launcher_record(sweep_dir).get("jobs", []), job_id]
    data["launcher"] = {"name": launcher.name, "kind": "slurm", "workers": workers, "jobs": jobs, "logs": LOGS}
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def submitted_jobs(sweep_dir: Path) -> list[str]:
    from optlab.sweep.outputs import read_launcher_record

    jobs = read_launcher_record(sweep_dir).get("jobs", [])
    if not jobs:
        raise ConfigError(f"{sweep_dir}: no Slurm job recorded in sweep.json (was it run with --launcher slurm?)")
    return [str(j) for j in jobs]


# ---------------------------------------------------------------- inside a task


def run_task(task: SlurmWorker) -> str:
    """One array task: its workers until the budget is reached or a signal stops them."""
    from optlab.sweep.outputs import write_outputs
    from optlab.sweep.run import OutputsKeeper, StartedSweep

    warning = preemption_signal()
    warned: list[int] = []
    requeue_task = signal.getsignal(warning)  # submitit's checkpoint-and-requeue handler

    def on_warning(signum, frame) -> None:
        warned.append(signum)
        signal.raise_signal(signal.SIGTERM)  # the same clean stop as a SIGTERM

    signal.signal(warning, on_warning)
    study = shared_study(task)
    keeper = OutputsKeeper(StartedSweep(task.spec, task.sweep_dir, task.storage_url, study, task.device),
                           on_rows=lambda rows: None)  # nothing shows them inside a task
    stopped = run_workers_of_task(task, keeper.update)
    write_outputs(study, task.spec, task.sweep_dir)
    if stopped and warned and callable(requeue_task):
        requeue_task(warned[0], None)  # checkpoints this task, `scontrol requeue`s it and exits
    if stopped:
        return "stopped by a signal; its trial is queued to resume from its checkpoint"
    cancel_pending_when_done(study, task.spec)
    return "done"


def shared_study(task: SlurmWorker):
    from optlab.sweep.storage import open_storage
    from optlab.sweep.study import open_study, quiet_optuna

    quiet_optuna()
    return open_study(task.spec, open_storage(task.storage_url))


def run_workers_of_task(task: SlurmWorker, after_trial: Callable[[], None]) -> bool:
    """The task's workers (one per GPU x per_gpu, else one), in this process or spawned;
    whether a signal stopped them."""
    from optlab.sweep.workers import (
        WorkerArgs,
        WorkerPool,
        available_cores,
        plan,
        run_in_process,
        visible_gpus,
    )

    cores = int(os.environ.get("SLURM_CPUS_PER_TASK") or available_cores())
    index = int(os.environ.get("SLURM_ARRAY_TASK_ID") or 0)
    placements = plan(None, task.spec.per_gpu, visible_gpus(task.device), cores)
    for i, p in enumerate(placements):  # distinct sampler seeds across the array's tasks
        p.worker = index * len(placements) + i
    args = [WorkerArgs(task.spec, task.sweep_dir, task.storage_url, p, task.heartbeat, task.grace) for p in placements]
    if len(args) > 1:
        return WorkerPool(args).run(tick=after_trial) in (130, 143)
    try:
        run_in_process(args[0], after_trial=after_trial)
    except Interrupted:
        return True
    return False


def cancel_pending_when_done(study, spec: SweepSpec) -> None:
    """The budget is reached: the array's tasks still waiting in the queue are cancelled."""
    from optlab.sweep.study import tally

    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array and tally(study).finished >= spec.trials:
        subprocess.run(["scancel", "--state=PENDING", array], capture_output=True, timeout=60, check=False)


# ---------------------------------------------------------------- from the login node


def jobs_alive(job_ids: list[str]) -> dict[str, str] | None:
    """The array tasks still queued or running: task id -> Slurm state. None when squeue got
    no answer this time (a busy controller times out its clients): not knowing is not "none"."""
    done = _call(["squeue", "--noheader", "--array", "--format=%i %T", "--jobs", ",".join(job_ids)])
    if done.returncode != 0:  # squeue refuses ids it has forgotten: none of them is alive
        return {} if "invalid job id" in done.stderr.lower() else None
    return dict(line.split(None, 1) for line in done.stdout.splitlines() if len(line.split()) == 2)


def cancel(sweep_dir: Path) -> list[str]:
    """scancel every job array submitted for the sweep folder; the ids cancelled."""
    jobs = submitted_jobs(sweep_dir)
    _slurm(["scancel", *jobs])
    return jobs


@dataclass
class Follow:
    """Watches a Slurm sweep through its storage until the budget is reached or no task is left."""

    sweep_dir: Path
    storage_url: str | None = None
    every: float = 2.0
    patience: float = 120.0  # seconds without an answer from squeue before the watch gives up
    sleep: Callable[[float], None] = time.sleep

    def spec_and_study(self):
        """The sweep's spec (from sweep.json) and its study, opened for reading."""
        from optlab.sweep.outputs import read_sweep_json
        from optlab.sweep.spec import spec_from_dict
        from optlab.sweep.storage import open_storage
        from optlab.sweep.study import open_study, quiet_optuna

        spec = spec_from_dict(read_sweep_json(self.sweep_dir))  # a ConfigError when it is no sweep folder
        url = self.storage_url or json.loads((Path(self.sweep_dir) / "sweep.json").read_text()).get("storage")
        if not url:
            raise ConfigError(f"{self.sweep_dir}: sweep.json records no storage; give --storage")
        quiet_optuna()
        return spec, open_study(spec, open_storage(url, existing_in=Path(self.sweep_dir)))

    def run(self, spec: SweepSpec, study, on_rows: Callable[[list[dict], dict], None]) -> list[dict]:
        """Calls on_rows(rows, alive tasks) every `every` seconds; the last rows."""
        from optlab.sweep.outputs import trial_rows
        from optlab.sweep.study import tally

        jobs, unanswered_since, gone = submitted_jobs(self.sweep_dir), None, False
        known = {job: "UNKNOWN" for job in jobs}  # alive until squeue says otherwise
        while True:
            alive = jobs_alive(jobs)
            if alive is None:  # the last answer stands until squeue has been silent for `patience`
                unanswered_since = time.monotonic() if unanswered_since is None else unanswered_since
                if time.monotonic() - unanswered_since > self.patience:
                    raise ConfigError(f"squeue: Slurm has not answered for {self.patience:g} s")
                alive = known
            else:
                known, unanswered_since = alive, None
            rows = trial_rows(study, spec)
            on_rows(rows, alive)
            count = tally(study)
            if (count.finished >= spec.trials and count.running == 0) or (not alive and gone):
                return rows
            gone = not alive  # "none alive" twice in a row: one empty answer may catch a requeue in passing
            self.sleep(self.every)
