"""Population sweeps (--population K) end like solo ones: exactly N finished trials, each
with its run folder, also after a SIGTERM and a rerun, and after a kill -9 and a rerun."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
from pathlib import Path

import pytest

from faultkit import child_env, optlab_command

pytestmark = pytest.mark.slow  # real processes

FINISHED = {"completed", "pruned", "diverged", "failed"}
COMMAND = ["sweep", "lr_wd", "--population", "8", "--trials", "16", "trainer.epochs=3", "trainer.progress=false",
           "--heartbeat", "1", "--grace", "3"]


def sweep(tmp_path: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*optlab_command(), *COMMAND], cwd=tmp_path, env=child_env(fault), capture_output=True,
                          text=True, timeout=240)


def check_sixteen(tmp_path: Path) -> None:
    folder = tmp_path / "outputs" / "sweeps" / "lr_wd"
    with open(folder / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    finished = [r for r in rows if r["status"] in FINISHED]
    assert len(finished) == 16, [r["status"] for r in rows]
    for row in finished:
        run = folder / row["run_dirs"]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] in ("completed", "pruned") and summary["execution"] == "population"
    ended = [json.loads(p.read_text())["status"] for p in folder.glob("runs/*/summary.json")]
    assert sum(s in ("completed", "pruned") for s in ended) == 16
    assert "running" not in ended


def test_a_population_sweep_ends_with_exactly_n_trials_and_their_run_folders(tmp_path):
    done = sweep(tmp_path)
    assert done.returncode == 0, done.stderr
    check_sixteen(tmp_path)


@pytest.mark.parametrize("fault, code", [("population.step@30=sigterm", 143),
                                         ("population.step@30=kill", -signal.SIGKILL)])
def test_a_stopped_population_sweep_rerun_ends_with_exactly_n(tmp_path, fault, code):
    stopped = sweep(tmp_path, fault)
    assert stopped.returncode == code, stopped.stderr
    rerun = sweep(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    check_sixteen(tmp_path)
