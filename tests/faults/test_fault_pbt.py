"""A PBT sweep stopped by SIGTERM, or killed (mid-epoch, between a round's checkpoint writes,
after a round's checkpoints but before its commit), and run again ends as the same sweep
never stopped: every member's metrics.csv, every event of pbt.csv and every trial's value
identical (a CPU's arithmetic is repeatable), exactly epochs x members rows, no event
redone or lost."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from faultkit import TIMING, child_env, optlab_command

pytestmark = pytest.mark.slow  # real processes

EPOCHS, MEMBERS = 6, 4
STEPS = 23  # digits at batch 64: 1,438 training samples


def write_sweep(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pbt_tiny.yaml"
    path.write_text(yaml.safe_dump({
        "metric": "val_acc", "sampler": "random", "seed": 3, "scheduler": "pbt", "population": MEMBERS,
        "pbt": {"interval": 2, "quantile": 0.25, "perturb": [0.8, 1.25], "resample": 0.25},
        "base": ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "optimizer=momentum",
                 f"trainer.epochs={EPOCHS}", "trainer.progress=false"],
        "space": {"optimizer.lr": {"type": "float", "low": 0.003, "high": 1.0, "log": True},
                  "optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.95}}}))
    return path


def sweep(folder: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*optlab_command(), "sweep", str(write_sweep(folder))], cwd=folder, env=child_env(fault),
                          capture_output=True, text=True, timeout=240)


def outcome(folder: Path) -> dict:
    """What the sweep ended with, without timings and timestamps."""
    sweep_dir = folder / "outputs" / "sweeps" / "pbt_tiny"
    with open(sweep_dir / "pbt.csv", newline="") as f:
        events = [{k: v for k, v in row.items() if k != "run_dir"} for row in csv.DictReader(f)]
    state = json.loads((sweep_dir / "pbt.json").read_text())
    members = {}
    for record in state["members"]:
        run = sweep_dir / record["run_dir"]
        with open(run / "metrics.csv", newline="") as f:
            members[record["member"]] = [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    with open(sweep_dir / "trials.csv", newline="") as f:
        told = sorted((r["value"], r["param.optimizer.lr"]) for r in csv.DictReader(f) if r["status"] == "completed")
    return {"events": events, "members": members, "trials": told, "state_events": state["events"]}


@pytest.fixture(scope="module")
def never_stopped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    done = sweep(folder)
    assert done.returncode == 0, done.stderr
    return outcome(folder)


@pytest.mark.parametrize("fault, code, rolls_back", [
    (f"train.step@{2 * STEPS + 14}=sigterm", 143, False),   # inside epoch 2: every member stops at that step
    (f"train.step@{2 * STEPS + 14}=kill", -signal.SIGKILL, False),  # its checkpoints: the round after epoch 1
    ("checkpoint.write@6=kill", -signal.SIGKILL, True),     # the round after epoch 3, its 2nd member's write
    ("pbt.commit@2=kill", -signal.SIGKILL, True),           # that round's checkpoints all written, not committed
])
def test_a_stopped_pbt_sweep_run_again_ends_as_if_never_stopped(tmp_path, never_stopped, fault, code, rolls_back):
    stopped = sweep(tmp_path, fault)
    assert stopped.returncode == code, stopped.stderr
    rerun = sweep(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert ("every member goes back to epoch 1" in rerun.stderr) == rolls_back, rerun.stderr
    assert "Traceback" not in rerun.stderr
    resumed = outcome(tmp_path)
    for rows in resumed["members"].values():
        assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))  # exactly the budget, nothing twice
    assert resumed == never_stopped
    assert len(resumed["events"]) == 2  # rounds after epochs 1 and 3, one member each
