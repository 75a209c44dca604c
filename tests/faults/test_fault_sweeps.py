"""Sweeps through the real CLI in subprocesses: parallel workers, signals and resume, a kill -9
at every stage of a trial, and two processes sharing one study, in SQLite and in PostgreSQL
(OPTLAB_TEST_POSTGRES_URL, set by .ci/run). Whatever stops a sweep, rerunning the same
command ends with exactly N finished trials and none left RUNNING."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from faultkit import optlab_command as optlab_executable

pytestmark = pytest.mark.slow

FINISHED = {"completed", "pruned", "diverged", "failed"}
TINY_BASE = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "optimizer=sgd", "trainer.progress=false"]


def write_sweep(folder: Path, trials: int, epochs: int = 1) -> Path:
    body = {"metric": "val_acc", "sampler": "random", "pruner": "none", "trials": trials,
            "base": [*TINY_BASE, f"trainer.epochs={epochs}"],
            "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.5, "log": True}}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def rows_of(folder: Path) -> list[dict]:
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def load(folder: Path, study: str = "tiny"):
    return optuna.load_study(study_name=study, storage=f"sqlite:///{folder / 'study.db'}")


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # the study is not created yet
            pass
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the sweep")


def states(folder: Path) -> list[str]:
    """Trial states straight from the SQLite file (cheap enough to poll)."""
    import sqlite3

    with sqlite3.connect(f"file:{folder / 'study.db'}?mode=ro", uri=True, timeout=10) as db:
        return [state for (state,) in db.execute("SELECT state FROM trials ORDER BY number")]


def running_with_a_configuration(folder: Path) -> int:
    """RUNNING trials that have sampled their parameters (a trial killed before that has no
    configuration to queue again)."""
    import sqlite3

    with sqlite3.connect(f"file:{folder / 'study.db'}?mode=ro", uri=True, timeout=10) as db:
        query = ("SELECT COUNT(DISTINCT t.trial_id) FROM trials t JOIN trial_params p ON p.trial_id = t.trial_id "
                 "WHERE t.state = 'RUNNING'")
        return db.execute(query).fetchone()[0]


def check_finished_runs(rows: list[dict], folder: Path) -> None:
    """Every finished trial's runs, found from the sweep folder (run_dirs are relative to it)."""
    for r in rows:
        if r["status"] in FINISHED:
            for run in r["run_dirs"].split(";"):
                summary = json.loads((folder / run / "summary.json").read_text())
                assert summary["status"] in ("completed", "pruned")
                assert (folder / run / "metrics.csv").is_file() and (folder / run / "config.yaml").is_file()


def test_two_workers_are_processes_with_the_cores_split_between_them(tmp_path):
    path, gate = write_sweep(tmp_path, trials=4, epochs=3), tmp_path / "gate"
    # each worker holds at its first epoch's end until both hold a trial: neither can finish the sweep alone
    sweep = subprocess.Popen([*optlab_executable(), "sweep", str(path), "--jobs", "2"], cwd=tmp_path,
                             env=env(OMP_NUM_THREADS="", OPTLAB_FAULT="train.epoch_end=wait", OPTLAB_FAULT_GATE=str(gate)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    wait_for(lambda: len({t.user_attrs.get("worker_pid") for t in load(folder).trials
                          if t.state.name == "RUNNING" and t.user_attrs.get("worker_pid")}) == 2)
    gate.touch()
    stdout, stderr = sweep.communicate(timeout=300)
    result = subprocess.CompletedProcess(sweep.args, sweep.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    assert result.stdout.strip().splitlines()[-1] == "outputs/sweeps/tiny"
    rows = rows_of(folder)
    assert len(rows) == 4  # (a trial two workers started at once is dropped as surplus: numbers may skip)
    assert all(r["status"] == "completed" for r in rows)
    trials = [t for t in load(folder).trials if t.state.name == "COMPLETE"]
    assert len({t.user_attrs["worker_pid"] for t in trials}) == 2
    assert {t.user_attrs["threads"] for t in trials} == {max(1, len(os.sched_getaffinity(0)) // 2)}


def test_sigterm_and_sigkill_then_rerun_end_with_exactly_n_trials(tmp_path):
    n = 4
    command = [*optlab_executable(), "sweep", str(write_sweep(tmp_path, trials=n, epochs=10)),
               "--heartbeat", "1", "--grace", "2"]
    folder = tmp_path / "outputs" / "sweeps" / "tiny"

    def start():
        return subprocess.Popen(command, cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    first = start()  # SIGTERM during the second trial: it stops cleanly and is queued again
    wait_for(lambda: states(folder).count("COMPLETE") >= 1 and "RUNNING" in states(folder))
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 143

    second = start()  # SIGKILL of the whole process group: a RUNNING trial is left behind
    wait_for(lambda: states(folder).count("COMPLETE") >= 2 and running_with_a_configuration(folder))
    os.killpg(second.pid, signal.SIGKILL)
    second.wait(timeout=60)
    assert "RUNNING" in states(folder)

    third = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    rows = rows_of(folder)
    numbers = [int(r["number"]) for r in rows]
    assert len(numbers) == len(set(numbers))
    assert sum(r["status"] in FINISHED for r in rows) == n
    interrupted = [int(r["number"]) for r in rows if r["status"] == "interrupted"]
    assert len(interrupted) >= 1  # at least the SIGKILLed one; its configuration ran again:
    check_finished_runs(rows, folder)
    retried = [t.user_attrs["retry_of"] for t in load(folder).trials if "retry_of" in t.user_attrs]
    assert sorted(retried) == interrupted


def test_sigterm_to_a_pool_is_passed_on_to_each_worker_then_a_rerun_ends_with_n(tmp_path):
    """Only the sweep process gets the signal (its own session); it passes it on to the spawned
    workers, whose trials stop at a step and are queued again; the sweep exits 143. Each worker
    holds at its first epoch's end until the signal is sent: one cannot finish both trials
    before the other has started."""
    n, gate = 2, tmp_path / "gate"
    path = write_sweep(tmp_path, trials=n, epochs=40)
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    held = env(OPTLAB_FAULT="train.epoch_end@1=wait", OPTLAB_FAULT_GATE=str(gate))
    pool = subprocess.Popen([*optlab_executable(), "sweep", str(path), "--jobs", "2"], cwd=tmp_path, env=held,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: states(folder).count("RUNNING") == 2)
    pool.send_signal(signal.SIGTERM)
    gate.touch()
    out, err = pool.communicate(timeout=120)
    assert pool.returncode == 143, err
    assert "rerun the same command to continue it" in err and out.strip().splitlines()[-1] == "outputs/sweeps/tiny"
    assert "RUNNING" not in states(folder)
    interrupted = [r for r in rows_of(folder) if r["status"] == "interrupted"]
    assert interrupted and all("rerun the same `optlab sweep` command" in r["error"] for r in interrupted)
    rerun = subprocess.run([*optlab_executable(), "sweep", str(path)], cwd=tmp_path, env=env(), capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert sum(r["status"] in FINISHED for r in rows_of(folder)) == n


@pytest.fixture
def shared_storage(storage_url, tmp_path):
    """Where two processes share one study (storage_url, conftest.py's matrix): the SQLite file
    beside the one folder both work in, or a fresh PostgreSQL database that two folders share,
    as two machines would."""
    if storage_url.startswith("sqlite"):
        return storage_url, [tmp_path, tmp_path]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    return storage_url, [tmp_path / "a", tmp_path / "b"]


def test_two_processes_share_one_study_and_stop_at_n_in_total(shared_storage, tmp_path):
    url, folders = shared_storage
    study, n, gate = "shared", 6, tmp_path / "gate"
    # the first holds its first trial at its first epoch's end until the second runs a trial too
    holds = [{"OPTLAB_FAULT": "train.epoch_end@1=wait", "OPTLAB_FAULT_GATE": str(gate)}, {}]
    procs = []
    for folder, hold in zip(folders, holds):
        command = [*optlab_executable(), "sweep", str(write_sweep(folder, trials=n, epochs=2)), "--storage", url,
                   "--study", study]
        procs.append(subprocess.Popen(command, cwd=folder, env=env(**hold), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not gate.exists():  # two run folders: the held one's and the second process's
        assert time.monotonic() < deadline, f"the second process never ran a trial: {procs[1].poll()}"
        if sum(len(list((f / "outputs" / "sweeps" / study / "runs").glob("*"))) for f in set(folders)) >= 2:
            gate.touch()
        time.sleep(0.1)
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name=study, storage=url).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == n
    assert len({t.user_attrs["worker_pid"] for t in trials if t.state.name == "COMPLETE"}) == 2
    for folder in folders:
        rows = rows_of(folder / "outputs" / "sweeps" / study)
        assert sum(r["status"] == "completed" for r in rows) == n


def test_a_kill_between_ask_and_the_first_heartbeat_does_not_hang_a_rerun(shared_storage):
    """The trial is RUNNING with no heartbeat row, which Optuna's own stale check skips."""
    url, (folder, _) = shared_storage
    command = sweep_command(write_sweep(folder, trials=2), "--storage", url, "--study", "orphan")
    killed = subprocess.run(command, cwd=folder, env=env(OPTLAB_FAULT="sweep.trial_created=kill"),
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    study = optuna.load_study(study_name="orphan", storage=url)
    assert [t.state.name for t in study.trials] == ["RUNNING"]
    rerun = subprocess.run(command, cwd=folder, env=env(), capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    states = [t.state.name for t in optuna.load_study(study_name="orphan", storage=url).trials]
    assert states.count("COMPLETE") == 2 and "RUNNING" not in states


def sweep_command(path: Path, *extra: str) -> list[str]:
    return [*optlab_executable(), "sweep", str(path), "--heartbeat", "1", "--grace", "3", *extra]


@pytest.mark.parametrize("fault", [
    "sweep.before_ask@2=kill",      # between two trials
    "sweep.trial_created@2=kill",   # inside ask: the trial exists, its first heartbeat does not
    "train.step@30=kill",           # inside the second epoch of the first trial
    "checkpoint.write@2=kill",      # while a run's checkpoint is being written
    "sweep.trials_csv@3=kill",      # while trials.csv is being rewritten
])
def test_a_kill_at_any_stage_of_a_trial_then_a_rerun_ends_with_exactly_n(tmp_path, fault):
    n = 3
    command = sweep_command(write_sweep(tmp_path, trials=n, epochs=2))
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    killed = subprocess.run(command, cwd=tmp_path, env=env(OPTLAB_FAULT=fault), capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert [t.state.name for t in load(folder).trials].count("RUNNING") == 0
    rows = rows_of(folder)
    assert sum(r["status"] in FINISHED for r in rows) == n
    check_finished_runs(rows, folder)
    assert not list(folder.rglob(".*.tmp"))


def test_an_interrupted_trial_says_how_to_continue_and_keeps_its_run_folder(tmp_path):
    command = sweep_command(write_sweep(tmp_path, trials=2, epochs=3))
    stopped = subprocess.run(command, cwd=tmp_path, env=env(OPTLAB_FAULT="train.step@30=sigterm"),
                             capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 143, stopped.stderr
    row = next(r for r in rows_of(tmp_path / "outputs" / "sweeps" / "tiny") if r["status"] == "interrupted")
    assert "rerun the same `optlab sweep` command" in row["error"] and "--resume" not in row["error"]
    run = tmp_path / "outputs" / "sweeps" / "tiny" / row["run_dirs"]
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_a_failed_trial_keeps_its_run_folder_in_trials_csv(tmp_path):
    path = write_sweep(tmp_path, trials=1)
    body = yaml.safe_load(path.read_text())
    body["base"] += ["data=moons", "augment=flip"]  # flips need images: found at the first batch, inside the run
    path.write_text(yaml.safe_dump(body))
    result = subprocess.run(sweep_command(path), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    row = rows_of(tmp_path / "outputs" / "sweeps" / "tiny")[0]
    assert row["status"] == "failed" and row["run_dirs"], (result.stderr, row)
    run = tmp_path / "outputs" / "sweeps" / "tiny" / row["run_dirs"]
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def test_a_grid_sweeps_killed_point_is_trained_again_by_the_rerun(tmp_path):
    """The killed trial's grid point counts as visited once its trial is failed stale, so the
    grid reads as exhausted; its queued retry must still run: every point ends completed."""
    path = write_sweep(tmp_path, trials=3, epochs=2)
    body = yaml.safe_load(path.read_text())
    body.update(sampler="grid", space={"optimizer.lr": [0.05, 0.1, 0.2]})
    path.write_text(yaml.safe_dump(body))
    command = sweep_command(path)
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    killed = subprocess.run(command, cwd=tmp_path, env=env(OPTLAB_FAULT="train.epoch_end@4=kill"),
                            capture_output=True, text=True, timeout=120)  # inside the second point's run
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    done = sorted(float(r["param.optimizer.lr"]) for r in rows_of(folder) if r["status"] == "completed")
    assert done == [0.05, 0.1, 0.2]
