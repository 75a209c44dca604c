"""Sweeps on Slurm: refusals before anything is submitted (no cluster needed), and on the real
one-node cluster that .ci/slurm.sh starts (OPTLAB_TEST_SLURM): a job array to the budget,
fire and forget then --watch, two studies side by side, `scontrol requeue` resuming a trial (and
a population's every member) from its checkpoint, and `scancel --signal=KILL` caught by the
heartbeat."""
from __future__ import annotations

import csv
import fcntl
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from testkit import REPO, read_rows, run_optlab, write_sweep

from optlab.cli.app import main
from optlab.sweep.launcher import load_launcher
from optlab.sweep.slurm import executor_parameters

SLURM = os.environ.get("OPTLAB_TEST_SLURM")
pytestmark = pytest.mark.xdist_group("slurm")  # one at a time on the one-node cluster (pyproject.toml)
needs_slurm = pytest.mark.skipif(
    not SLURM or shutil.which("sbatch") is None,
    reason="no Slurm cluster: OPTLAB_TEST_SLURM is unset or sbatch is missing (CI starts one with .ci/slurm.sh)")
FINISHED = {"completed", "pruned", "diverged", "failed"}
SMALL = ["model.width=16", "trainer.epochs=3"]
SLOW_EPOCHS = ["model.depth=3", "model.width=512", "batch.size=4", "trainer.epochs=8"]  # about 0.5 s an epoch


@pytest.fixture(autouse=True)
def one_test_at_a_time_on_the_cluster():
    """The xdist group keeps these tests on one worker; this lock keeps them one at a time on the
    one-node cluster even where the group is ignored (it was, silently, under pytest 9.2), so no
    test's jobs wait behind or slow down another's."""
    if not SLURM:
        yield
        return
    with open(Path(SLURM) / "tests.lock", "w") as lock:
        wait_for(lambda: took(lock), timeout=1200, every=0.5)
        yield


def took(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def stable_lr_wd(tmp_path: Path) -> str:
    """sweeps/lr_wd.yaml with lr at most 0.01, in tmp_path (the study keeps its name): at batch 4
    the file's larger lrs can diverge, and the resume tests compare 8 epochs of one trial."""
    body = yaml.safe_load((REPO / "sweeps" / "lr_wd.yaml").read_text())
    body["space"]["optimizer.lr"]["high"] = 0.01
    (tmp_path / "lr_wd.yaml").write_text(yaml.safe_dump(body))
    return "lr_wd.yaml"


# ---------------------------------------------------------------- refused before submitting (no cluster)

@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sinfo that knows the partitions debug and gpu, and an sbatch that leaves a mark when called."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "sinfo").write_text("#!/bin/sh\nprintf 'debug\\ngpu\\n'\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ntouch {tmp_path / 'sbatch-called'}\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path / "sbatch-called"


def refused(capsys, *argv) -> str:
    code = main(["sweep", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def test_a_bad_partition_is_refused_naming_the_partitions(tmp_path, capsys, fake_slurm):
    err = refused(capsys, str(write_sweep(tmp_path)), "--launcher", "slurm", "launcher.partition=gpus")
    assert err.endswith("launcher.partition=gpus: no such Slurm partition; choose from: debug, gpu")
    assert not fake_slurm.exists()


def test_a_missing_submitit_is_refused_with_the_install_command(tmp_path, capsys, fake_slurm, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    err = refused(capsys, str(write_sweep(tmp_path)), "--launcher", "slurm", "--workers", "2")
    assert err.endswith("--launcher slurm needs submitit: pip install 'optlab[slurm]'")
    assert not fake_slurm.exists()


def test_no_slurm_commands_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "sbatch not found" in refused(capsys, str(write_sweep(tmp_path)), "--launcher", "slurm")


@pytest.mark.parametrize("storage", ["journal:/nonexistent-optlab/study.journal",
                                     "postgresql://nobody:secret@127.0.0.1:1/optlab"])
def test_an_unreachable_storage_is_refused_before_submitting(tmp_path, capsys, fake_slurm, storage):
    err = refused(capsys, str(write_sweep(tmp_path)), "--launcher", "slurm", "--storage", storage)
    assert "cannot open the storage" in err and "secret" not in err
    assert not fake_slurm.exists()


def test_slurm_flags_belong_to_slurm_and_jobs_to_local_sweeps(tmp_path, capsys, fake_slurm):
    assert "--workers and --wait: for --launcher slurm" in refused(capsys, str(write_sweep(tmp_path)), "--workers", "2")
    assert "--jobs: for local sweeps" in refused(capsys, str(write_sweep(tmp_path)), "--launcher", "slurm",
                                                 "--jobs", "2")
    assert "no Slurm job recorded" in refused(capsys, "--cancel", str(tmp_path))


def test_no_workers_is_refused_before_the_sweep_folder_and_study_are_made(tmp_path, capsys, fake_slurm):
    err = refused(capsys, str(write_sweep(tmp_path)), "--launcher", "slurm", "--workers", "0")
    assert err.endswith("--workers 0: must be >= 1")
    assert not (tmp_path / "outputs").exists() and not fake_slurm.exists()


def test_the_launcher_keys_become_submitits_parameters():
    launcher = load_launcher("slurm", None, ["launcher.partition=gpu", "launcher.account=lab", "launcher.qos=high",
                                             "launcher.time_min=30", "launcher.gpus_per_worker=2",
                                             "launcher.cpus_per_worker=8", "launcher.mem_gb=32",
                                             "launcher.array_parallelism=4", "launcher.constraint=a100",
                                             "launcher.setup=[module load cuda]",
                                             "launcher.additional_parameters={mail-type: END}"])
    assert executor_parameters(launcher, "lr_wd") == {
        "name": "optlab-lr_wd", "timeout_min": 30, "nodes": 1, "tasks_per_node": 1, "cpus_per_task": 8,
        "gpus_per_node": 2, "mem_gb": 32.0, "slurm_partition": "gpu", "slurm_account": "lab", "slurm_qos": "high",
        "slurm_constraint": "a100", "slurm_array_parallelism": 4, "slurm_setup": ["module load cuda"],
        "slurm_additional_parameters": {"mail-type": "END"}, "slurm_signal_delay_s": 120}
    assert "slurm_partition" not in executor_parameters(load_launcher("slurm"), "s")  # the cluster's default


def test_watch_reports_jobs_that_ended_short_of_the_budget_and_cancel_scancels_every_array(tmp_path, capsys,
                                                                                          fake_slurm):
    """A fake squeue that knows no job (they ended) and a scancel that logs its arguments."""
    from optlab.sweep.slurm import record_submission

    bin_dir = fake_slurm.parent / "fake-bin"
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "scancel").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scancel.log'}\n")
    for tool in ("squeue", "scancel"):
        (bin_dir / tool).chmod(0o755)
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path), "--storage", f"journal:{tmp_path / 'study.journal'}"]) == 0
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    for job in ("41", "42"):
        record_submission(folder, load_launcher("slurm"), 2, job)
    main(["sweep", str(path), "--trials", "3", "--storage", f"journal:{tmp_path / 'study.journal'}", "--extend", "2"])
    assert json.loads((folder / "sweep.json").read_text())["launcher"]["jobs"] == ["41", "42"]  # kept by a rerun
    capsys.readouterr()
    assert main(["sweep", "--watch", str(folder)]) == 0  # 3 of 3 finished
    (folder / "trials.csv").unlink()
    body = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**body, "trials": 5}))
    capsys.readouterr()
    assert main(["sweep", "--watch", str(folder)]) == 5
    err = capsys.readouterr().err
    assert "the sweep's Slurm jobs ended with 3 of 5 trials finished" in err
    assert len(read_rows(folder)) == 3  # --watch rewrote trials.csv
    assert main(["sweep", "--cancel", str(folder)]) == 0
    assert (tmp_path / "scancel.log").read_text() == "41 42\n"


def test_a_squeue_that_does_not_answer_is_one_line_not_a_traceback(monkeypatch):
    from optlab.errors import ConfigError
    from optlab.sweep import slurm

    def hang(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(slurm.subprocess, "run", hang)
    with pytest.raises(ConfigError, match=r"^squeue: Slurm does not answer \(.*timed out after 60 seconds\)$"):
        slurm.jobs_alive(["41"])


def test_watch_keeps_following_through_a_squeue_without_answer_and_gives_up_after_its_patience(monkeypatch):
    import types

    from optlab.errors import ConfigError
    from optlab.sweep import outputs, slurm, study

    answers = iter([None, {"7_0": "RUNNING"}, None, {}, {"7_0": "PENDING"}, {}, {}])
    monkeypatch.setattr(slurm, "submitted_jobs", lambda folder: ["7"])
    monkeypatch.setattr(slurm, "jobs_alive", lambda jobs: next(answers))
    monkeypatch.setattr(outputs, "trial_rows", lambda study_, spec: [])
    monkeypatch.setattr(study, "tally", lambda study_: study.Tally(0, 1))
    spec, seen = types.SimpleNamespace(trials=2), []
    slurm.Follow("sweep", sleep=lambda s: None).run(spec, None, lambda rows, alive: seen.append(dict(alive)))
    # silence is not "none alive", and the watch ends on the second "none alive" in a row only
    assert seen == [{"7": "UNKNOWN"}, {"7_0": "RUNNING"}, {"7_0": "RUNNING"}, {}, {"7_0": "PENDING"}, {}, {}]

    clock = iter([1.0, 1.0, 200.0])  # silent at 1 s, still at 200 s
    monkeypatch.setattr(slurm.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(slurm, "jobs_alive", lambda jobs: None)
    with pytest.raises(ConfigError, match=r"^squeue: Slurm has not answered for 120 s$"):
        slurm.Follow("sweep", sleep=lambda s: None).run(spec, None, lambda rows, alive: None)


def test_a_spawned_worker_inside_a_slurm_job_leaves_the_preemption_signal_to_its_task(tmp_path, monkeypatch):
    """Slurm signals every process of a task: a pool's worker must not die of USR2 (its default
    action) but stop cleanly on the SIGTERM that the task's own process passes on."""
    import dataclasses
    import multiprocessing
    import signal

    from testkit import sweep_folder, tiny_spec

    from optlab.sweep.workers import Placement
    from optlab.sweep.storage import default_storage
    from optlab.sweep.workers import WorkerArgs, worker_main

    monkeypatch.setenv("SLURM_JOB_ID", "41")
    spec = tiny_spec(tmp_path, trials=1)
    spec = dataclasses.replace(spec, base=(*[o for o in spec.base if not o.startswith("trainer.epochs")],
                                           "trainer.epochs=500"))
    folder = sweep_folder(tmp_path, "unit")
    folder.mkdir(parents=True)
    args = WorkerArgs(spec, folder, default_storage(folder), Placement(), heartbeat=5, grace=20)
    worker = multiprocessing.get_context("spawn").Process(target=worker_main, args=(args,))
    worker.start()
    try:
        wait_for(lambda: (folder / "runs").is_dir() and any((folder / "runs").iterdir()), timeout=120)
        os.kill(worker.pid, signal.SIGUSR2)  # a lower number than SIGTERM: delivered first
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(120)
    finally:
        if worker.is_alive():
            worker.kill()
    assert worker.exitcode == 128 + signal.SIGTERM


# ---------------------------------------------------------------- on a real Slurm

def job_of(stdout: str) -> str:
    return re.search(r"^job (\d+)$", stdout, re.MULTILINE).group(1)


def squeue(job: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T", "--jobs", job],
                         capture_output=True, text=True, check=False).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def wait_for(condition, timeout: float = 120, every: float = 0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def writers_gone(sweep_dir: Path) -> bool:
    """No live process holds a run folder's lease: the stopped task's processes have exited."""
    for lease in sweep_dir.glob("runs/*/.writer.*"):
        try:
            os.kill(int(json.loads(lease.read_text())["pid"]), 0)
        except (ValueError, KeyError):  # being written
            return False
        except (ProcessLookupError, FileNotFoundError):
            continue
        return False
    return True


def start_requeued_now(task: str, sweep_dir: Path) -> None:
    """Slurm holds a requeued task back (its BeginTime about two minutes on), which also lets
    the stopped instance's processes exit; the test waits for those, then starts it now. Not
    within the second its predecessor's credential was revoked (before it showed PENDING):
    slurmd refuses a credential of that second ("Job credential revoked") and the task ends."""
    wait_for(lambda: squeue(task).get(task) == "PENDING", timeout=60)
    revoked_by = time.time()
    wait_for(lambda: writers_gone(sweep_dir), timeout=60)
    time.sleep(max(0.0, math.floor(revoked_by) + 1.2 - time.time()))
    subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], check=True)


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def trial_mid_run(folder: Path, epochs_done: int = 2):
    """(run folder, Slurm task) of a running trial with at least epochs_done epochs written."""
    from optlab.sweep.outputs import read_sweep_json
    from optlab.sweep.spec import spec_from_dict
    from optlab.sweep.storage import open_storage
    from optlab.sweep.study import open_study, quiet_optuna

    quiet_optuna()
    meta = json.loads((folder / "sweep.json").read_text())
    study = open_study(spec_from_dict(read_sweep_json(folder)), open_storage(meta["storage"], existing_in=folder))
    for t in study.get_trials(deepcopy=False):
        runs = t.user_attrs.get("run_dirs", [])
        if t.state.name == "RUNNING" and runs and len(metrics(folder / runs[0])) >= epochs_done:
            return folder / runs[0], t.user_attrs["job"]
    return None


@needs_slurm
@pytest.mark.slow
def test_a_job_array_runs_the_sweep_to_its_budget_and_records_each_trials_job(tmp_path):
    done = run_optlab("sweep", "sweeps/lr_wd.yaml", "--launcher", "slurm", "--workers", "2", "--trials", "8", "--wait",
                      *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job, folder = job_of(done.stdout), tmp_path / done.stdout.strip().splitlines()[-1]
    rows = read_rows(folder)
    assert len(rows) == 8 and all(r["status"] in FINISHED for r in rows)
    assert len(list((folder / "runs").iterdir())) == 8
    assert {r["job"] for r in rows} <= {f"{job}_0", f"{job}_1"} and all(r["job"] for r in rows)
    assert json.loads((folder / "sweep.json").read_text())["launcher"]["jobs"] == [job]
    assert json.loads((folder / "sweep.json").read_text())["storage"] == f"journal:{folder.resolve()}/study.journal"


@needs_slurm
@pytest.mark.slow
def test_the_tasks_share_a_postgresql_study(tmp_path):
    url = os.environ.get("OPTLAB_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: OPTLAB_TEST_POSTGRES_URL is unset (CI starts one with .ci/postgres.sh)")
    study = f"slurm-{uuid.uuid4().hex[:8]}"
    done = run_optlab("sweep", "sweeps/lr_wd.yaml", "--study", study, "--storage", url, "--launcher", "slurm",
                      "--workers", "2", "--trials", "4", "--wait", *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read_rows(tmp_path / "outputs" / "sweeps" / study)
    assert len(rows) == 4 and all(r["status"] in FINISHED for r in rows)
    assert {r["job"] for r in rows} <= {f"{job_of(done.stdout)}_{i}" for i in (0, 1)}


@needs_slurm
@pytest.mark.slow
def test_fire_and_forget_returns_at_once_and_two_studies_share_the_cluster_without_mixing(tmp_path):
    jobs = {}
    for study, engine in (("alpha", []), ("beta", ["--population", "3"])):  # beta: a population inside the task
        started = time.monotonic()
        done = run_optlab("sweep", "sweeps/lr_wd.yaml", "--study", study, "--launcher", "slurm", "--workers", "1",
                          "--trials", "3", *engine, *SMALL, cwd=tmp_path)
        assert done.returncode == 0 and time.monotonic() - started < 20, done.stderr
        jobs[study] = job_of(done.stdout)
        assert squeue(jobs[study])  # queued or running: the command did not wait for it
    for study, job in jobs.items():
        folder = tmp_path / "outputs" / "sweeps" / study
        watched = run_optlab("sweep", "--watch", str(folder), cwd=tmp_path)
        assert watched.returncode == 0, watched.stderr
        rows = read_rows(folder)
        assert len(rows) == 3 and all(r["status"] in FINISHED and r["job"] in (job, f"{job}_0") for r in rows)
        assert all(Path(r["run_dirs"]).parent.name == "runs" for r in rows)
        assert len(list((folder / "runs").iterdir())) == 3
        wait_for(lambda job=job: not squeue(job), timeout=60)  # the task exits once the budget is reached


@needs_slurm
@pytest.mark.slow
def test_scontrol_requeue_mid_trial_resumes_it_from_its_checkpoint_as_an_uninterrupted_run(tmp_path):
    from omegaconf import OmegaConf

    from optlab.training.api import train

    done = run_optlab("sweep", stable_lr_wd(tmp_path), "--launcher", "slurm", "--workers", "2", "--trials", "3",
                      "--pruner", "none", *SLOW_EPOCHS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "outputs" / "sweeps" / "lr_wd"
    run_dir, task = wait_for(lambda: trial_mid_run(folder), timeout=300)
    subprocess.run(["scontrol", "requeue", task], check=True)
    watched = run_optlab("sweep", "--watch", str(folder), cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    rows = read_rows(folder)
    stopped = [r for r in rows if r["status"] == "interrupted"]
    assert len(stopped) == 1 and stopped[0]["run_dirs"] == os.path.relpath(run_dir, folder)
    resumed = [r for r in rows if r["run_dirs"] == stopped[0]["run_dirs"] and r["status"] == "completed"]
    assert len(resumed) == 1 and sum(r["status"] in FINISHED for r in rows) == 3
    assert len(list((folder / "runs").iterdir())) == 3  # the resumed trial kept its run folder
    rows_written = metrics(run_dir)
    assert [int(r["epoch"]) for r in rows_written] == list(range(8))  # contiguous, no epoch twice
    again = train(OmegaConf.load(run_dir / "config.yaml"), run_root=tmp_path / "uninterrupted")
    timing = ("epoch_time_s", "samples_per_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows_written] == \
        [{k: v for k, v in r.items() if k not in timing} for r in metrics(again.run_dir)]
    assert float(resumed[0]["value"]) == max(float(r["val_acc"]) for r in rows_written)
    wait_for(lambda: not squeue(job_of(done.stdout)), timeout=60)  # the requeued task, cancelled once done


@needs_slurm
@pytest.mark.slow
def test_scontrol_requeue_mid_population_resumes_every_member_from_its_checkpoint(tmp_path):
    """--population 3 inside one task: `scontrol requeue` mid-epoch stops all three trials at
    a step with their checkpoints; the requeued task continues each member in its own folder
    (epochs contiguous), and their rows equal the same three runs as an uninterrupted population."""
    from omegaconf import OmegaConf

    from optlab.training.api import train_many

    epochs = 4  # a population of 3 takes about 5 s an epoch here: 2 still to go when it is requeued
    done = run_optlab("sweep", stable_lr_wd(tmp_path), "--launcher", "slurm", "--workers", "1", "--trials", "3",
                      "--population", "3", "--pruner", "none", *SLOW_EPOCHS[:-1], f"trainer.epochs={epochs}",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "outputs" / "sweeps" / "lr_wd"
    _, task = wait_for(lambda: trial_mid_run(folder), timeout=300)
    subprocess.run(["scontrol", "requeue", task], check=True)
    start_requeued_now(task, folder)
    watched = run_optlab("sweep", "--watch", str(folder), cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    rows = read_rows(folder)
    stopped = [r["run_dirs"] for r in rows if r["status"] == "interrupted"]
    assert len(stopped) == 3 and sorted(r["run_dirs"] for r in rows if r["status"] == "completed") == sorted(stopped)
    assert len(list((folder / "runs").iterdir())) == 3  # every member continued in its folder
    members = [folder / run for run in stopped]
    assert all([int(r["epoch"]) for r in metrics(run)] == list(range(epochs)) for run in members)
    straight = train_many([OmegaConf.load(run / "config.yaml") for run in members], population=3,
                          run_root=tmp_path / "uninterrupted")
    timing = ("epoch_time_s", "samples_per_s")
    assert [[{k: v for k, v in r.items() if k not in timing} for r in metrics(run)] for run in members] == \
        [[{k: v for k, v in r.items() if k not in timing} for r in metrics(result.run_dir)] for result in straight]
    wait_for(lambda: not squeue(job_of(done.stdout)), timeout=60)


@needs_slurm
@pytest.mark.slow
def test_a_worker_killed_without_warning_has_its_trial_failed_by_the_heartbeat_and_retried(tmp_path):
    done = run_optlab("sweep", "sweeps/lr_wd.yaml", "--launcher", "slurm", "--workers", "2", "--trials", "4",
                      "--pruner", "none", "--heartbeat", "1", "--grace", "4", *SLOW_EPOCHS[:-1], "trainer.epochs=6",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "outputs" / "sweeps" / "lr_wd"
    _, task = wait_for(lambda: trial_mid_run(folder, epochs_done=1), timeout=300)
    subprocess.run(["scancel", "--signal=KILL", task], check=True)
    watched = run_optlab("sweep", "--watch", str(folder), cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    rows = read_rows(folder)
    assert sum(r["status"] in FINISHED for r in rows) == 4
    assert not any(r["state"] == "RUNNING" for r in rows)
    killed = [r for r in rows if r["status"] == "interrupted"]
    assert len(killed) == 1 and killed[0]["job"] == task
    retried = [r for r in rows if r["param.optimizer.lr"] == killed[0]["param.optimizer.lr"] and r["status"] in FINISHED]
    assert len(retried) == 1 and retried[0]["job"] != task
    wait_for(lambda: not squeue(job_of(done.stdout)), timeout=60)


@needs_slurm
@pytest.mark.slow
def test_a_bad_partition_on_the_cluster_submits_nothing(tmp_path):
    done = run_optlab("sweep", "sweeps/lr_wd.yaml", "--launcher", "slurm", "launcher.partition=nope", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "launcher.partition=nope: no such Slurm partition; choose from: debug" in done.stderr
    assert not (tmp_path / "outputs").exists()  # refused before the sweep folder, let alone a job script


@needs_slurm
@pytest.mark.slow
def test_the_time_limit_warning_stops_the_trial_and_the_task_requeues_itself_to_resume_it(tmp_path):
    """USR2 is what Slurm sends `signal_delay_s` before the time limit (submitit's preemption
    signal): the trial stops with its checkpoint and the task requeues itself through submitit;
    Slurm holds a requeued task back for a while, which the test skips with StartTime=now."""
    done = run_optlab("sweep", stable_lr_wd(tmp_path), "--launcher", "slurm", "--workers", "1", "--trials", "2",
                      "--pruner", "none", *SLOW_EPOCHS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job, folder = job_of(done.stdout), tmp_path / "outputs" / "sweeps" / "lr_wd"
    run_dir, task = wait_for(lambda: trial_mid_run(folder), timeout=300)
    subprocess.run(["scancel", "--signal=USR2", task], check=True)
    assert wait_for(lambda: squeue(job).get(task) == "PENDING", timeout=60)  # requeued by the task itself
    start_requeued_now(task, folder)
    watched = run_optlab("sweep", "--watch", str(folder), cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    rows = read_rows(folder)
    assert [r["status"] for r in rows if r["run_dirs"] == os.path.relpath(run_dir, folder)] == ["interrupted", "completed"]
    assert sum(r["status"] in FINISHED for r in rows) == 2
    assert [int(r["epoch"]) for r in metrics(run_dir)] == list(range(8))
    log = "".join(p.read_text() for p in (folder / "slurm").glob("*_log.*"))
    assert "Caught signal SIGUSR2" in log and "Requeued job" in log
    wait_for(lambda: not squeue(job), timeout=60)
