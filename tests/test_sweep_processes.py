"""Sweeps through the real CLI in subprocesses: parallel workers, signals and resume, and
two processes sharing one study in PostgreSQL (OPTLAB_TEST_POSTGRES_URL, set by .ci/run)."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import optlab_executable

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


def check_finished_runs(rows: list[dict], cwd: Path) -> None:
    for r in rows:
        if r["status"] in FINISHED:
            for run in r["run_dirs"].split(";"):
                summary = json.loads((cwd / run / "summary.json").read_text())
                assert summary["status"] in ("completed", "pruned")
                assert (cwd / run / "metrics.csv").is_file() and (cwd / run / "config.yaml").is_file()


def test_two_workers_are_processes_with_the_cores_split_between_them(tmp_path):
    path = write_sweep(tmp_path, trials=3)
    result = subprocess.run([*optlab_executable(), "sweep", str(path), "--jobs", "2"], cwd=tmp_path,
                            env=env(OMP_NUM_THREADS=""), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    assert result.stdout.strip().splitlines()[-1] == "outputs/sweeps/tiny"
    rows = rows_of(folder)
    assert sorted(int(r["number"]) for r in rows) == [0, 1, 2]
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
    wait_for(lambda: states(folder).count("COMPLETE") >= 2 and "RUNNING" in states(folder))
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
    check_finished_runs(rows, tmp_path)
    retried = [t.user_attrs["retry_of"] for t in load(folder).trials if "retry_of" in t.user_attrs]
    assert sorted(retried) == interrupted


@pytest.fixture
def fresh_postgres():
    """A new, empty database on the test server: both sweeps race to create Optuna's tables."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(os.environ["OPTLAB_TEST_POSTGRES_URL"])
    name = f"optlab_{uuid.uuid4().hex[:10]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.skipif(not os.environ.get("OPTLAB_TEST_POSTGRES_URL"),
                    reason="OPTLAB_TEST_POSTGRES_URL is unset (eval \"$(bash .ci/postgres.sh)\" starts a server)")
def test_two_processes_share_one_postgres_study_and_stop_at_n_in_total(tmp_path, fresh_postgres):
    url, study, n = fresh_postgres, "shared", 4
    machines = [tmp_path / "a", tmp_path / "b"]  # two working folders, as on two machines
    procs = []
    for folder in machines:
        folder.mkdir()
        command = [*optlab_executable(), "sweep", str(write_sweep(folder, trials=n)), "--storage", url,
                   "--study", study]
        procs.append(subprocess.Popen(command, cwd=folder, env=env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name=study, storage=url).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == n
    assert len({t.user_attrs["worker_pid"] for t in trials if t.state.name == "COMPLETE"}) == 2
    for folder in machines:
        rows = rows_of(folder / "outputs" / "sweeps" / study)
        assert sum(r["status"] == "completed" for r in rows) == n
