"""The loop, called in-process: steps, determinism, divergence, the epoch hook, regression, zero epochs."""
import csv
import math

import pytest

from optlab.errors import Pruned, TrainingFailed
from optlab.runs.files import read_json
from optlab.runs.folder import METRIC_COLUMNS
from optlab.training.api import train


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_steps_and_batch_size_follow_the_plan(compose_cfg):
    from optlab.data.split import load_dataset

    n_train = len(load_dataset({"name": "digits"}, 0.2, seed=0).x_train)
    table = rows(train(compose_cfg("batch.size=100", "trainer.epochs=2")).run_dir)
    assert [int(r["step"]) for r in table] == [math.ceil(n_train / 100), 2 * math.ceil(n_train / 100)]
    assert int(table[0]["batch_size"]) == 100


def test_same_seed_gives_identical_metrics(compose_cfg):
    a = rows(train(compose_cfg("model.dropout=0.3")).run_dir)
    b = rows(train(compose_cfg("model.dropout=0.3")).run_dir)
    timing = {"epoch_time_s", "samples_per_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in a] == \
           [{k: v for k, v in r.items() if k not in timing} for r in b]
    c = rows(train(compose_cfg("model.dropout=0.3", "trainer.seed=1")).run_dir)
    assert a[-1]["val_loss"] != c[-1]["val_loss"]


def test_divergence_keeps_earlier_rows(compose_cfg):
    # lr 0.01 for two epochs, then x1e7: the loss blows up in epoch 2
    cfg = compose_cfg("schedule=step", "schedule.step_size=2", "schedule.gamma=1e7",
                      "optimizer.lr=0.01", "trainer.epochs=4")
    result = train(cfg)  # diverged is the result's status, its error the reason and exit code
    assert result.status == "diverged" and isinstance(result.error, TrainingFailed) and result.error.exit_code == 4
    run = result.run_dir
    table = rows(run)
    assert [int(r["epoch"]) for r in table[:2]] == [0, 1]
    assert all(math.isfinite(float(r["train_loss"])) for r in table[:2])
    summary = read_json(run / "summary.json")
    assert summary["status"] == "diverged" and summary["epochs_done"] == 2


def test_epoch_hook_can_prune(compose_cfg):
    def prune_after_first(epoch, row):
        assert set(METRIC_COLUMNS) <= set(row)
        if epoch == 0:
            raise Pruned("val_acc below median")

    result = train(compose_cfg("trainer.epochs=3"), on_epoch=prune_after_first)
    assert result.status == "pruned"
    assert len(rows(result.run_dir)) == 1


def test_regression_task_trains_with_mse(compose_cfg):
    pytest.importorskip("optlab.data")
    from optlab.data._base import DATASETS
    if "linreg" not in DATASETS:
        pytest.skip("linreg dataset not registered")
    result = train(compose_cfg("data=linreg", "model=linear", "optimizer.lr=0.01"))
    assert result.summary["final_val_acc"] is None
    assert result.summary["final_val_loss"] is not None


def test_zero_epochs_reports_the_initial_model(compose_cfg):
    result = train(compose_cfg("trainer.epochs=0"))
    assert result.summary["epochs_done"] == 0
    assert 0.0 <= result.summary["final_val_acc"] <= 0.5
    assert result.summary["status"] == "completed" and result.summary["reason"] == "no training epochs"
