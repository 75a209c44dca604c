"""One trial's life, alone or in a population: a diverged run is the worst value; pruning stops a
run, keeps its rows and says so; a run's value is its best or final epoch's; a stopped trial's
continuation resumes its runs."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import yaml
from testkit import read_rows, sweep_folder, tiny_spec, write_sweep

from optlab.cli.app import main
from optlab.errors import Pruned
import optlab.sweep.workers as workers
from optlab.sweep.spec import SweepSpec
from optlab.sweep.storage import open_storage
from optlab.sweep.study import open_study, trial_status
from optlab.sweep.trials import PruneReporter
from optlab.sweep.workers import Worker


def test_sweep_records_a_diverged_trial_as_worst_and_goes_on(tmp_path, capsys):
    path = write_sweep(tmp_path, sampler="grid", trials=5,
                       space={"optimizer.lr": {"type": "categorical", "choices": [0.5, 1.0e+9]}})
    assert main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    folder = sweep_folder(tmp_path)
    assert Path(out[-1]).resolve() == folder.resolve()
    rows = {r["param.optimizer.lr"]: r for r in read_rows(folder)}
    assert len(rows) == 2  # the grid has two points
    assert rows["1000000000.0"]["status"] == "diverged" and float(rows["1000000000.0"]["value"]) == 0.0
    good = rows["0.5"]
    assert good["state"] == "COMPLETE" and float(good["value"]) > 0.3
    summary = json.loads((folder / good["run_dirs"] / "summary.json").read_text())
    assert summary["status"] == "completed" and float(good["value_seed0"]) == pytest.approx(summary["best_val_acc"])
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert "optimizer.lr=0.5" in best and "optimizer=sgd" in best
    meta = json.loads((folder / "sweep.json").read_text())
    assert {"study", "storage", "metric", "direction", "sampler", "pruner", "trials", "seeds", "space", "base"} <= set(meta)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


@pytest.mark.parametrize("population", [None, 2])
def test_a_pruned_run_stops_its_trial_keeps_its_rows_and_says_pruned(tmp_path, monkeypatch, population):
    """Alone or in a population: the pruned run ends after its first epoch, and its trial's
    other seed stops too (never started, or at its next epoch's end)."""
    spec = replace(tiny_spec(tmp_path, trials=1), seeds=2, population=population)
    folder = sweep_folder(tmp_path, "unit")
    folder.mkdir(parents=True)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    monkeypatch.setattr(workers, "make_pruner", lambda spec: AlwaysPrune())
    Worker(spec, folder, url).run()
    trial = open_study(spec, open_storage(url)).trials[0]
    assert trial.state.name == "PRUNED" and trial_status(trial) == "pruned"
    run_dir = folder / trial.user_attrs["run_dirs"][0]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "pruned"
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 2  # header + the one epoch it ran
    assert len(trial.user_attrs["run_dirs"]) == (1 if population is None else 2)


def test_reporter_uses_one_step_per_epoch_per_seed():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) == 2

    trial = FakeTrial()
    reporter = PruneReporter(trial, SweepSpec("s", metric="val_loss", direction="minimize"), offset=3)
    reporter(0, {"val_loss": 0.5})
    with pytest.raises(Pruned):
        reporter(1, {"val_loss": 0.7})
    assert trial.reports == [(3, 0.5), (4, 0.7)] and reporter.best == 0.5


def test_a_runs_value_is_its_best_or_its_final_epoch_as_the_sweep_says():
    class Trial:
        def report(self, value, step):
            pass

        def should_prune(self):
            return False

    rows = [{"val_acc": a} for a in (0.5, 0.9443, 0.9276)]
    for at, expected in (("best", 0.9443), ("final", 0.9276)):
        reporter = PruneReporter(Trial(), SweepSpec("s", at=at), offset=0)
        for epoch, row in enumerate(rows):
            reporter(epoch, row)
        assert reporter.run_value({"final_val_acc": 0.1}) == expected
    untouched = PruneReporter(Trial(), SweepSpec("s", at="final"), offset=0)  # no epoch reported: the summary's
    assert untouched.run_value({"final_val_acc": 0.8}) == 0.8 and untouched.run_value({}) is None


@pytest.mark.slow
def test_a_trial_stopped_by_sigterm_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path):
    """SIGTERM at step 30 (inside the second epoch): the trial stops there with a checkpoint and
    is queued again; the rerun's trial continues that run folder, and the run's rows and value
    equal an uninterrupted run's, bit for bit."""
    import csv

    from omegaconf import OmegaConf
    from testkit import TINY_BASE, run_optlab

    from optlab.training.api import train

    base = [o for o in TINY_BASE if not o.startswith("trainer.epochs")] + ["trainer.epochs=3",
                                                                           f"trainer.out_dir={tmp_path / 'outputs'}"]
    path = write_sweep(tmp_path, trials=1, base=base)
    stopped = run_optlab("sweep", str(path), cwd=tmp_path, env={"OPTLAB_FAULT": "train.step@30=sigterm"})
    assert stopped.returncode == 143, stopped.stderr
    assert run_optlab("sweep", str(path), cwd=tmp_path).returncode == 0
    folder = sweep_folder(tmp_path)
    first, retry = read_rows(folder)
    assert (first["status"], retry["status"]) == ("interrupted", "completed")
    assert retry["run_dirs"] == first["run_dirs"] and len(list((folder / "runs").iterdir())) == 1
    run_dir = folder / retry["run_dirs"]

    def rows(run: Path) -> list[dict]:
        with open(run / "metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "samples_per_s")} for r in csv.DictReader(f)]

    resumed = rows(run_dir)
    assert [r["epoch"] for r in resumed] == ["0", "1", "2"]
    assert resumed == rows(train(OmegaConf.load(run_dir / "config.yaml"), run_root=tmp_path / "again").run_dir)
    assert float(retry["value"]) == max(float(r["val_acc"]) for r in resumed)  # epochs before the stop count
