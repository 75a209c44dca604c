"""`optlab sweep --watch` of a Slurm sweep whose jobs all ended short of the budget (here a
fake squeue that knows no task, as after `scancel --signal=KILL`): a trial its killed worker
left RUNNING is shown and written as interrupted, and queued again, not as running; the
watch ends with exit 5 (the cluster stopped the work), never 1, which is for bugs."""
from __future__ import annotations

import csv
import os

import optuna
from testkit import write_sweep

from optlab.cli import main


def test_a_watch_whose_jobs_are_gone_shows_their_trials_interrupted_and_exits_5(tmp_path, capsys, monkeypatch):
    from optlab.sweep.launcher import load_launcher
    from optlab.sweep.slurm import record_submission

    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")  # no task of the sweep is alive
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    journal = tmp_path / "study.journal"
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path), "--storage", f"journal:{journal}", "--trials", "3"]) == 0
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    record_submission(folder, load_launcher("slurm"), 1, "41")
    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    study.set_user_attr("optlab.trials", 4)
    killed = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(0.01, 0.5, log=True)})
    killed.set_user_attr("status", "running")  # its worker was killed mid-trial: RUNNING for good
    body = (folder / "sweep.json").read_text().replace('"trials": 3', '"trials": 4')
    (folder / "sweep.json").write_text(body)
    capsys.readouterr()

    assert main(["sweep", "--watch", str(folder)]) == 5
    err = capsys.readouterr().err
    assert "the sweep's Slurm jobs ended with 3 of 4 trials finished" in err
    assert f"(the tasks' logs: {folder / 'slurm'})" in err  # where to read why they ended
    with open(folder / "trials.csv", newline="") as f:
        statuses = {int(r["number"]): r["status"] for r in csv.DictReader(f)}
    assert statuses[killed.number] == "interrupted" and "running" not in statuses.values(), statuses
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [killed.params]  # runs again on the rerun
