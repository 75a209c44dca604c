"""A worker paused past --grace (SIGSTOP, as `scontrol suspend`, a VM pause or a closed laptop
do), then woken (SIGCONT): meanwhile the other worker failed its trial and ran the
configuration again. The woken worker sees that the trial is no longer its own, drops its
run (`interrupted`, not `failed`) with one line, and goes on; the sweep ends with exactly
its budget and exit 0."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest
import yaml
from faultkit import child_env, optlab_command

pytestmark = pytest.mark.slow

TRIALS = 4


def sweep_file(tmp_path):
    body = {"study": "paused", "metric": "val_acc", "sampler": "random", "pruner": "none", "trials": TRIALS,
            "base": ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "optimizer=sgd",
                     "trainer.epochs=8", "trainer.progress=false", f"trainer.out_dir={tmp_path / 'out'}"],
            "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2, "log": True}}}
    path = tmp_path / "paused.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def query(db, sql: str) -> list:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pause_outside_a_write(pid: int, db) -> None:
    """SIGSTOP the worker at a moment it holds no write lock on the study (its heartbeat thread
    commits every second): a process paused inside SQLite's write lock holds up every other
    writer until it wakes, which no storage client can undo (docs/reliability.md)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        connection = sqlite3.connect(db, timeout=0.2)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
            return
        except sqlite3.OperationalError:  # paused holding the lock: let it finish the commit
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)
        finally:
            connection.close()
    raise AssertionError("never found the worker outside a write")


def test_a_worker_woken_after_its_trial_was_taken_over_drops_it_and_goes_on(tmp_path):
    db = tmp_path / "out" / "sweeps" / "paused" / "study.db"
    sweep = subprocess.Popen([*optlab_command(), "sweep", str(sweep_file(tmp_path)), "--jobs", "2", "--heartbeat", "1",
                              "--grace", "2"], cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        running = ("SELECT t.trial_id, a.value_json FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
                   "JOIN trial_user_attributes r ON r.trial_id = t.trial_id WHERE t.state = 'RUNNING' "
                   "AND a.key = 'worker_pid' AND r.key = 'run_dirs' ORDER BY t.trial_id")  # its run has begun
        trial_id, pid = wait_for(lambda: query(db, running)[:1], "a running trial")[0]
        pause_outside_a_write(int(pid), db)  # mid-trial: its heartbeat stops with it
        wait_for(lambda: query(db, f"SELECT 1 FROM trials WHERE trial_id = {trial_id} AND state = 'FAIL'"),
                 "the other worker to fail the paused worker's trial")
        os.kill(int(pid), signal.SIGCONT)
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, err
    assert "this worker drops it" in err and "Traceback" not in err and "unexpected error" not in err, err
    states = [s for (s,) in query(db, "SELECT state FROM trials")]
    assert states.count("COMPLETE") == TRIALS and "RUNNING" not in states, states
    dropped = query(db, f"SELECT value_json FROM trial_user_attributes WHERE trial_id = {trial_id} AND key = 'run_dirs'")
    run = tmp_path / "out" / "sweeps" / "paused" / json.loads(dropped[0][0])[0]
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
