"""A PostgreSQL restart in the middle of a sweep, for real (`pg_ctl stop -m fast`, then
`start`), on a server of the test's own. The worker is held right after a trial's epoch
(`train.epoch_end=wait`), the server stopped, the worker let go into the outage. An outage
shorter than --storage-timeout is waited out (one line going in, one coming out) and the
sweep ends as if nothing happened; a longer one stops the sweep cleanly, exit 5 in one line,
with the running trial's run `interrupted` at a checkpoint, and the rerun resumes that run
and ends with exactly the budget."""
from __future__ import annotations

import csv
import json
import time

import pytest
import yaml
from faultkit import PrivatePostgres, child_env, one_error_line, optlab_command

pytestmark = pytest.mark.slow

TRIALS, EPOCHS = 3, 3


@pytest.fixture
def postgres(tmp_path):
    server = PrivatePostgres()
    why = server.available()
    if why:
        pytest.skip(why)
    server.create()
    yield server
    server.remove()


def sweep_file(tmp_path):
    body = {"metric": "val_acc", "sampler": "random", "pruner": "none", "trials": TRIALS, "seed": 0,
            "base": ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "optimizer=sgd",
                     f"trainer.epochs={EPOCHS}", "trainer.progress=false", f"trainer.out_dir={tmp_path / 'out'}"],
            "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2, "log": True}}}
    path = tmp_path / "outage.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def start_held(tmp_path, postgres, *flags):
    """The sweep, its worker held after the 2nd epoch of its first trial (a gate file lets it go)."""
    import subprocess

    gate = tmp_path / "gate"
    command = [*optlab_command(), "sweep", str(sweep_file(tmp_path)), "--storage", postgres.url, *flags]
    process = subprocess.Popen(command, cwd=tmp_path, env=child_env("train.epoch_end@2=wait",
                               OPTLAB_FAULT_GATE=str(gate)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").glob("sweeps/outage/runs/*/metrics.csv")) or \
            len(next((tmp_path / "out").glob("sweeps/outage/runs/*/metrics.csv")).read_text().splitlines()) < 3:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    return process, gate


def trial_rows(tmp_path) -> list[dict]:
    with open(tmp_path / "out" / "sweeps" / "outage" / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_an_outage_shorter_than_the_deadline_is_waited_out(tmp_path, postgres):
    process, gate = start_held(tmp_path, postgres, "--storage-timeout", "60")
    postgres.stop()
    gate.touch()  # the worker reports its epoch to a storage that is gone
    time.sleep(3)  # the outage: what is measured is that the sweep rides it out
    postgres.start()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "the study's storage does not answer" in err and "the study's storage answers again" in err
    assert "Traceback" not in err and "optlab: error" not in err and "unexpected error" not in err, err
    rows = trial_rows(tmp_path)
    assert [r["status"] for r in rows] == ["completed"] * TRIALS


def test_a_frozen_server_has_a_deadline_too(tmp_path, postgres):
    import signal

    process, gate = start_held(tmp_path, postgres, "--storage-timeout", "3")
    postgres.signal_all(signal.SIGSTOP)  # connections stay open, nothing answers
    try:
        gate.touch()
        out, err = process.communicate(timeout=120)
    finally:
        postgres.signal_all(signal.SIGCONT)
    assert process.returncode == 5, err
    one_error_line(err, "the study's storage did not answer for 3 s")
    run = next((tmp_path / "out").glob("sweeps/outage/runs/*"))
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted", (run / "summary.json").read_text()


def test_an_outage_past_the_deadline_stops_cleanly_and_the_rerun_resumes(tmp_path, postgres):
    process, gate = start_held(tmp_path, postgres, "--storage-timeout", "3")
    postgres.stop()
    gate.touch()
    out, err = process.communicate(timeout=300)
    assert process.returncode == 5, err
    one_error_line(err, "the study's storage did not answer for 3 s", "rerun the same command")
    run = next((tmp_path / "out").glob("sweeps/outage/runs/*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and (run / "checkpoint.pt").is_file()

    postgres.start()
    import subprocess

    again = subprocess.run([*optlab_command(), "sweep", str(sweep_file(tmp_path)), "--storage", postgres.url],
                           cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rows = trial_rows(tmp_path)
    assert sum(r["status"] == "completed" for r in rows) == TRIALS
    assert not [r for r in rows if r["status"] == "running"]
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["status"] == "completed"
    with open(run / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(EPOCHS))  # each epoch once
