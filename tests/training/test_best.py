"""The best epoch's weights and early stopping: the rules on hand-made rows, then real runs
(a stalling run stops early, best.pt holds the best epoch's weights, a resume and a
population member stop where a solo run does)."""
from __future__ import annotations

import csv

import pytest
import torch

from optlab.config.compose import compose
from optlab.runs.files import read_json
from optlab.training.best import BestWeights, EarlyStopping
from optlab.training.api import train
from optlab.training.api import train_many

# lr 0.1 for two epochs, then 1e-9 of it: the validation loss stalls from epoch 2 on
STALLING = ("schedule=step", "schedule.step_size=2", "schedule.gamma=1e-9", "trainer.epochs=10",
            "trainer.early_stop.patience=2", "trainer.early_stop.min_delta=1e-4")


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_early_stopping_counts_epochs_without_an_improvement_beyond_min_delta():
    stopper = EarlyStopping({"patience": 2, "metric": "val_loss", "min_delta": 0.1}, "classification")
    history = []
    for loss in (1.0, 0.85, 0.8, 0.79, 0.5, 0.45, 0.44):
        stopper.update({"val_loss": loss})
        history.append((stopper.best, stopper.wait, stopper.stop))
    # 0.85 beats 1.0 by 0.15 > 0.1; 0.8 and 0.79 do not beat 0.85 by more than 0.1: two in a row
    assert history[:4] == [(1.0, 0, False), (0.85, 0, False), (0.85, 1, False), (0.85, 2, True)]
    assert history[4:] == [(0.5, 0, False), (0.5, 1, False), (0.5, 2, True)]


def test_early_stopping_on_accuracy_maximizes_and_patience_zero_never_stops():
    stopper = EarlyStopping({"patience": 1, "metric": "val_acc", "min_delta": 0.0}, "classification")
    stopper.update({"val_acc": 0.5})
    stopper.update({"val_acc": 0.6})
    assert (stopper.best, stopper.stop) == (0.6, False)
    stopper.update({"val_acc": 0.6})  # equal is no improvement
    assert stopper.stop
    never = EarlyStopping({"patience": 0, "metric": "val_loss", "min_delta": 0.0}, "classification")
    for _ in range(5):
        never.update({"val_loss": 1.0})
    assert never.wait == 4 and not never.stop


def test_early_stopping_replay_restarts_the_count_where_a_run_was_extended():
    stopper = EarlyStopping({"patience": 3, "metric": "val_loss", "min_delta": 0.0}, "classification")
    stopper.replay([{"epoch": e, "val_loss": v} for e, v in enumerate((1.0, 1.1, 1.2, 1.3))], restarts=[4])
    assert (stopper.best, stopper.wait, stopper.stop) == (1.0, 0, False)
    stopper.replay([{"epoch": 4, "val_loss": 1.5}], restarts=[4])
    assert stopper.wait == 1


def test_best_weights_keep_the_earliest_best_epoch_and_val_acc_means_val_loss_for_regression():
    best = BestWeights("val_acc", "classification")
    for epoch, acc in enumerate((0.5, 0.7, 0.7, float("nan"), 0.6)):
        best.offer(epoch, {"val_acc": acc}, lambda epoch=epoch: {"w": torch.tensor(float(epoch))})
    assert (best.epoch, best.value, best.weights["w"].item()) == (1, 0.7, 1.0)
    regression = BestWeights("val_acc", "regression")
    for epoch, loss in enumerate((3.0, 2.0, 2.5)):
        regression.offer(epoch, {"val_acc": None, "val_loss": loss}, dict)
    assert (regression.metric, regression.epoch, regression.value) == ("val_loss", 1, 2.0)


def test_a_stalling_run_stops_early_with_its_best_epoch(compose_cfg):
    result = train(compose_cfg(*STALLING))
    summary = read_json(result.run_dir / "summary.json")
    table = rows(result.run_dir)
    # epochs 0 and 1 improve; 2 and 3 do not (by more than 1e-4): the run ends before epoch 4
    assert [int(r["epoch"]) for r in table] == [0, 1, 2, 3]
    assert (summary["status"], summary["reason"], summary["epochs_done"]) == ("completed", "early_stopped", 4)
    accs = [float(r["val_acc"]) for r in table]
    assert summary["best_epoch"] == accs.index(max(accs)) and summary["best_metric"] == "val_acc"


def test_best_pt_holds_the_best_epochs_weights_not_the_last(compose_cfg):
    from optlab.optim.regularize import loss_fn
    from optlab.training.build import make_autocast
    from optlab.training.export import read_model_file, rebuild_model, split_data
    from optlab.training.engine import evaluate

    run = train(compose_cfg("optimizer.lr=2.0", "trainer.epochs=4")).run_dir  # val_acc jumps about
    table = rows(run)
    accs = [float(r["val_acc"]) for r in table]
    best_epoch = accs.index(max(accs))
    assert best_epoch < 3  # the test means something only when the best epoch is not the last
    saved = torch.load(run / "best.pt", weights_only=True)
    assert (saved["epoch"], saved["metric"], saved["value"]) == (best_epoch, "val_acc", max(accs))
    model_file = read_model_file(run)
    assert all(torch.equal(model_file["state_dict"][k], v) for k, v in saved["state_dict"].items())
    model = rebuild_model(run, model_file, torch.device("cpu"))
    x, y = split_data(run, model_file, "val")
    loss, acc = evaluate(model, x, y, loss_fn("classification", model_file["config"]), "classification", 1024,
                         make_autocast(torch.device("cpu"), "32"))
    assert (loss, acc) == (float(table[best_epoch]["val_loss"]), max(accs))  # that epoch's row, to the last bit


def test_a_run_interrupted_as_its_patience_ran_out_resumes_into_the_same_early_stop(compose_cfg, monkeypatch):
    from optlab import faults
    from optlab.errors import Interrupted

    cfg = compose_cfg(*STALLING)
    monkeypatch.setattr(faults, "_plan", {"train.epoch_end": (4, "sigterm")})  # after epoch 3: the count is full
    monkeypatch.setattr(faults, "_hits", {})
    with pytest.raises(Interrupted) as info:
        train(cfg)
    first = info.value.result.run_dir
    assert read_json(first / "summary.json")["status"] == "interrupted" and len(rows(first)) == 4
    monkeypatch.setattr(faults, "_plan", {})
    resumed = train(cfg, resume_dir=first)  # the rows replayed: it stops before training epoch 4
    straight = train(cfg)
    timing = ("epoch_time_s", "samples_per_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows(resumed.run_dir)] == \
           [{k: v for k, v in r.items() if k not in timing} for r in rows(straight.run_dir)]
    assert resumed.summary["reason"] == "early_stopped" and resumed.summary["best_epoch"] == straight.summary["best_epoch"]


def test_population_members_stop_early_and_measure_the_test_split_as_solo(tmp_path):
    base = ["model.width=32", "trainer.progress=false", f"trainer.out_dir={tmp_path}", *STALLING,
            "trainer.test_fraction=0.2"]
    cfgs = [compose([*base, f"trainer.seed={k}"]) for k in range(2)]
    members = train_many(cfgs, population=len(cfgs))
    for cfg, member in zip(cfgs, members):
        solo = train(cfg)
        assert member.summary["reason"] == solo.summary["reason"] == "early_stopped"
        assert member.summary["epochs_done"] == solo.summary["epochs_done"]
        assert member.summary["best_epoch"] == solo.summary["best_epoch"]
        assert abs(member.summary["test_loss"] - solo.summary["test_loss"]) < 1e-4 * solo.summary["test_loss"]
        assert abs(member.summary["test_acc"] - solo.summary["test_acc"]) <= 2 / 359
        assert torch.load(member.run_dir / "model.pt", weights_only=True)["best_epoch"] == member.summary["best_epoch"]
