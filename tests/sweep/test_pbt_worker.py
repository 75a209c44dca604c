"""A PBT sweep end to end, in this process (runner/sweep/pbt_worker.py): every member an
ordinary run folder with its values per epoch and its lineage, the sweep's pbt.csv and
best_schedule.yaml, one Optuna trial per member, a replay of the best schedule, members in
turns, diverged members revived."""
from __future__ import annotations

import csv
import json
import math

import yaml
from testkit import TINY_BASE, read_rows, study_of, sweep_folder, write_sweep

from optlab.cli.app import main

PBT = {"scheduler": "pbt", "population": 4, "trials": 4, "seed": 3,
       "pbt": {"interval": 2, "quantile": 0.25, "perturb": [0.8, 1.25]}}


def base(tmp_path, epochs: int, *extra: str) -> list[str]:
    return [*(o for o in TINY_BASE if not o.startswith("trainer.epochs=")), f"trainer.epochs={epochs}",
            f"trainer.out_dir={tmp_path / 'outputs'}", *extra]


def table(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def members(folder):
    return sorted((folder / "runs").iterdir())


def test_a_pbt_sweep_writes_ordinary_run_folders_their_lineage_pbt_csv_and_the_best_schedule(tmp_path, capsys):
    path = write_sweep(tmp_path, **PBT, base=base(tmp_path, 5))
    assert main(["sweep", str(path)]) == 0
    folder = sweep_folder(tmp_path)
    events = table(folder / "pbt.csv")
    assert [int(e["epoch"]) for e in events] == [1, 3]  # rounds after epochs 1 and 3, one member each (4 x 0.25)
    runs = members(folder)
    assert len(runs) == 4
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["scheduler"] == "pbt"
        rows = table(run / "metrics.csv")
        assert [int(r["epoch"]) for r in rows] == list(range(5)) and "optimizer.lr" in rows[0]
        assert (run / "lineage.csv").read_text().startswith("epoch,member,donor,reason")  # every member has one
    for event in events:
        run = folder / event["run_dir"]
        lineage = table(run / "lineage.csv")
        assert event["epoch"] in [e["epoch"] for e in lineage]
        rows = {int(r["epoch"]): float(r["optimizer.lr"]) for r in table(run / "metrics.csv")}
        assert rows[int(event["epoch"]) + 1] == float(event["optimizer.lr_after"])  # the explored lr from the next epoch
    trials = read_rows(folder)
    assert sorted(r["status"] for r in trials) == ["completed"] * 4
    assert "its whole schedule is best_schedule.yaml" in (folder / "best.yaml").read_text()
    best = yaml.safe_load((folder / "best_schedule.yaml").read_text())
    assert best["value"] == max(float(r["value"]) for r in trials) and best["epochs"] == 5
    assert list(best["schedule"]) == ["optimizer.lr"] and best["schedule"]["optimizer.lr"][0][0] == 0
    study = study_of(tmp_path)
    for trial in study.trials:  # optuna-dashboard: initial values as params, the lineage as an attribute
        assert set(trial.params) == {"optimizer.lr"} and "lineage" in trial.user_attrs
        assert trial.user_attrs["pbt_member"] in range(4)
    capsys.readouterr()
    assert main(["train", "--replay", str(folder / "best_schedule.yaml"), f"trainer.out_dir={tmp_path / 'replay'}",
                 "trainer.progress=false"]) == 0
    replayed = table(next((tmp_path / "replay" / "runs").iterdir()) / "metrics.csv")
    assert len(replayed) == 5
    assert [float(r["optimizer.lr"]) for r in replayed] == [values_at(best, e) for e in range(5)]


def values_at(best, epoch):
    return [v for e, v in best["schedule"]["optimizer.lr"] if e <= epoch][-1]


def test_a_finished_pbt_sweep_run_again_trains_nothing_more_and_rerun_points_to_replay(tmp_path, capsys):
    path = write_sweep(tmp_path, **PBT, base=base(tmp_path, 2))
    assert main(["sweep", str(path)]) == 0
    before = read_rows(sweep_folder(tmp_path))
    assert main(["sweep", str(path)]) == 0
    assert read_rows(sweep_folder(tmp_path)) == before
    capsys.readouterr()
    assert main(["rerun", str(sweep_folder(tmp_path))]) == 2
    assert "optlab train --replay" in capsys.readouterr().err


def test_members_that_cannot_be_one_population_train_in_turns(tmp_path, capsys):
    path = write_sweep(tmp_path, **PBT, base=base(tmp_path, 3, "optimizer=lbfgs", "optimizer.max_iter=2"),
                       space={"optimizer.lr": {"type": "float", "low": 0.1, "high": 1.0, "log": True}})
    assert main(["sweep", str(path)]) == 0
    assert "the runs train in turns, not as one population: optimizer=lbfgs has no functional form" in capsys.readouterr().err
    folder = sweep_folder(tmp_path)
    assert len(table(folder / "pbt.csv")) == 1
    assert {json.loads((r / "summary.json").read_text())["execution"] for r in members(folder)} == {"turns"}


def test_a_diverged_member_takes_a_top_members_state_at_the_end_of_that_epoch(tmp_path):
    path = write_sweep(tmp_path, **{**PBT, "seed": 1, "pbt": {"resample": 0.0}}, metric="val_loss", direction="minimize",
                       base=[f"trainer.out_dir={tmp_path / 'outputs'}", "data=linreg", "model=linear",
                             "optimizer=sgd", "trainer.epochs=4", "trainer.progress=false"],
                       space={"optimizer.lr": {"type": "float", "low": 0.01, "high": 50.0, "log": True}})
    assert main(["sweep", str(path)]) == 0
    folder = sweep_folder(tmp_path)
    revived = [e for e in table(folder / "pbt.csv") if e["reason"] == "diverged"]
    assert revived and all(not math.isfinite(float(e["member_score"])) for e in revived)
    for event in revived:  # from the donor's weights and lr x 0.8 or x 1.25: finite again
        rows = table(folder / event["run_dir"] / "metrics.csv")
        assert all(math.isfinite(float(r["val_loss"])) for r in rows[int(event["epoch"]) + 1:])
    assert {json.loads((r / "summary.json").read_text())["status"] for r in members(folder)} == {"completed"}


def test_a_pbt_sweep_without_a_population_exits_2_with_one_line(tmp_path, capsys):
    assert main(["sweep", str(write_sweep(tmp_path)), "--scheduler", "pbt"]) == 2
    err = capsys.readouterr().err
    assert "scheduler: pbt trains a population: give --population K" in err and "Traceback" not in err
