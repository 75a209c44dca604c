"""Population sweeps (--population K) end like solo ones: exactly N finished trials, each
with its run folder, also after a SIGTERM and a rerun, and after a kill -9 and a rerun."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
from pathlib import Path

import pytest

from faultkit import child_env, optlab, optlab_command

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


@pytest.mark.parametrize("fault, code", [("train.step@30=sigterm", 143),
                                         ("train.step@30=kill", -signal.SIGKILL)])
def test_a_stopped_population_sweep_rerun_ends_with_exactly_n(tmp_path, fault, code):
    stopped = sweep(tmp_path, fault)
    assert stopped.returncode == code, stopped.stderr
    rerun = sweep(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    check_sixteen(tmp_path)


def test_ctrl_c_in_a_study_keeps_every_members_finished_epochs_and_the_rerun_ends_as_an_uninterrupted_one(tmp_path):
    """`optlab study run ioffe2015_batchnorm --population 16`: 20 runs, two structures of 10,
    each one population. SIGINT at step 7 of epoch 5 of the second population: each of its members
    writes its checkpoint at that step; the rerun continues all of them from there (none
    starts over) and the study's numbers are those of a study never interrupted."""
    steps = 23  # digits at batch 64: 1,438 training samples
    stop_at = 10 * steps + 5 * steps + 7  # the first population's 10 epochs, then 5 epochs and 7 steps
    command = ("study", "run", "ioffe2015_batchnorm", "--population", "16")  # auto's K is the machine's: fixed here
    stopped = optlab(*command, "--out", "stopped", cwd=tmp_path, fault=f"train.step@{stop_at}=sigint", timeout=300)
    assert stopped.returncode == 130, stopped.stderr
    runs = tmp_path / "stopped" / "ioffe2015_batchnorm" / "runs"
    statuses = {p.name: json.loads((p / "summary.json").read_text())["status"] for p in runs.iterdir()}
    assert sorted(statuses.values()) == ["completed"] * 10 + ["interrupted"] * 10
    for folder in (runs / name for name, status in statuses.items() if status == "interrupted"):
        assert (folder / "checkpoint.pt").is_file()
        with open(folder / "metrics.csv", newline="") as f:
            assert len(list(csv.DictReader(f))) == 5
    rerun = optlab(*command, "--out", "stopped", cwd=tmp_path, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "20 run(s): 10 reused, 10 to resume, 0 to train" in rerun.stderr
    assert "starting it over" not in rerun.stderr
    clean = optlab(*command, "--out", "clean", cwd=tmp_path, timeout=300)
    assert clean.returncode == 0, clean.stderr
    resumed, uninterrupted = (json.loads((tmp_path / out / "ioffe2015_batchnorm" / "verdict.json").read_text())
                              for out in ("stopped", "clean"))
    assert resumed["values"] == uninterrupted["values"]


def test_a_population_stopped_by_sigterm_resumes_every_member_from_its_checkpoint(tmp_path):
    """SIGTERM in the second epoch of a population of 8 trials: all 8 are queued again with
    their run folders; the rerun continues every member from its checkpoint (each folder has
    epochs 0, 1, 2 once, and no folder is new), and their rows equal those of the same 8 runs
    trained as one population without a stop."""
    from omegaconf import OmegaConf

    from optlab.training.api import train_many

    command = ["sweep", "lr_wd", "--population", "8", "--trials", "8", "--pruner", "none", "trainer.epochs=3",
               "trainer.progress=false"]
    stopped = optlab(*command, cwd=tmp_path, fault="train.step@30=sigterm")
    assert stopped.returncode == 143, stopped.stderr
    assert optlab(*command, cwd=tmp_path).returncode == 0
    folder = tmp_path / "outputs" / "sweeps" / "lr_wd"
    with open(folder / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    interrupted = [r["run_dirs"] for r in rows if r["status"] == "interrupted"]
    finished = [r["run_dirs"] for r in rows if r["status"] in FINISHED]
    assert len(interrupted) == 8 and sorted(finished) == sorted(interrupted)
    runs = sorted((folder / "runs").iterdir())
    assert len(runs) == 8
    timing = ("epoch_time_s", "samples_per_s")

    def metric_rows(run: Path) -> list[dict]:
        with open(run / "metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k not in timing} for r in csv.DictReader(f)]

    members = [folder / run for run in interrupted]  # in trial order, as the population stacked them
    assert all([r["epoch"] for r in metric_rows(run)] == ["0", "1", "2"] for run in members
               if json.loads((run / "summary.json").read_text())["status"] == "completed")
    straight = train_many([OmegaConf.load(run / "config.yaml") for run in members], population=8,
                          run_root=tmp_path / "straight")
    assert [metric_rows(run) for run in members] == [metric_rows(r.run_dir) for r in straight]
