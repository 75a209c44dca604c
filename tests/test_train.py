"""The loop, called in-process: metrics rows, summary, checkpoint, determinism, divergence."""
import csv
import math

import pandas as pd
import pytest

from runner.errors import Pruned, TrainingFailed
from runner.runs.files import read_json
from runner.runs.folder import METRIC_COLUMNS, load_checkpoint
from runner.training.loop import train


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_run_folder_holds_config_metrics_summary_checkpoint(compose_cfg):
    result = train(compose_cfg("trainer.epochs=3"))
    run = result.run_dir
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.csv", "summary.json", "checkpoint.pt"}
    table = rows(run)
    assert [int(r["epoch"]) for r in table] == [0, 1, 2]
    assert list(table[0].keys()) == METRIC_COLUMNS
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["epochs_done"] == 3
    assert summary["final_val_acc"] == pytest.approx(float(table[-1]["val_acc"]))
    assert summary["best_val_acc"] == pytest.approx(max(float(r["val_acc"]) for r in table))
    for key in ("final_val_loss", "wall_time_s", "seed", "device", "torch", "optlab"):
        assert key in summary
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and "model" in ckpt and "optimizer" in ckpt and "rng" in ckpt


def test_steps_and_batch_size_follow_the_plan(compose_cfg):
    from runner.data.split import load_dataset

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
    with pytest.raises(TrainingFailed) as info:
        train(cfg)
    run = info.value.result.run_dir
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


def test_resume_continues_to_the_same_result(compose_cfg, tmp_path):
    full = rows(train(compose_cfg("trainer.epochs=4", "model.dropout=0.2")).run_dir)
    stop_after = {"epoch": 1}

    class Stop(Exception):
        pass

    def stop(epoch, row):
        if epoch == stop_after["epoch"]:
            raise Stop

    cfg = compose_cfg("trainer.epochs=4", "model.dropout=0.2")
    with pytest.raises(Stop):
        train(cfg, on_epoch=stop)
    run = sorted((tmp_path / "outputs" / "runs").iterdir())[-1]
    resumed = rows(train(cfg, resume_dir=run).run_dir)
    timing = {"epoch_time_s", "samples_per_s"}
    strip = lambda t: [{k: v for k, v in r.items() if k not in timing} for r in t]
    assert strip(resumed) == strip(full)


@pytest.mark.parametrize("on_device", ["true", "false"])
def test_a_signal_inside_an_epoch_resumes_at_that_step_with_identical_metrics(compose_cfg, monkeypatch, on_device):
    import signal

    import runner.training.loop as rt
    from runner.errors import Interrupted

    overrides = ("trainer.epochs=3", "model.dropout=0.2", "trainer.log_every=1", f"trainer.data_on_device={on_device}")
    full = rows(train(compose_cfg(*overrides)).run_dir)
    steps_per_epoch, stop_at_call = int(full[0]["step"]), int(full[0]["step"]) + 7
    original, calls = rt.clip_gradients, [0]

    def clip_then_signal(params, reg):  # called once per step with log_every=1
        calls[0] += 1
        if calls[0] == stop_at_call:
            signal.raise_signal(signal.SIGTERM)
        return original(params, reg)

    monkeypatch.setattr(rt, "clip_gradients", clip_then_signal)
    with pytest.raises(Interrupted) as info:
        train(compose_cfg(*overrides))
    run = info.value.result.run_dir
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["epoch"] == 0 and ckpt["step"] == stop_at_call
    assert ckpt["mid_epoch"]["epoch"] == 1 and ckpt["mid_epoch"]["batches_done"] == stop_at_call - steps_per_epoch
    monkeypatch.setattr(rt, "clip_gradients", original)
    resumed = rows(train(compose_cfg(*overrides), resume_dir=run).run_dir)
    timing = {"epoch_time_s", "samples_per_s"}
    strip = lambda t: [{k: v for k, v in r.items() if k not in timing} for r in t]
    assert strip(resumed) == strip(full)


@pytest.mark.parametrize("overrides", [("schedule=multistep", "schedule.milestones=[1.5,3]"),
                                       ("batch=increasing", "batch.milestones=[a]")])
def test_bad_milestones_fail_before_a_run_folder_exists(compose_cfg, tmp_path, overrides):
    from runner.errors import ConfigError

    with pytest.raises(ConfigError, match="milestones"):
        train(compose_cfg(*overrides))
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").iterdir())


def test_regression_task_trains_with_mse(compose_cfg):
    pytest.importorskip("runner.data")
    from runner.data._base import DATASETS
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


def test_depth_zero_is_a_linear_model(compose_cfg):
    from runner.nn.models import build_model

    model = build_model(dict(compose_cfg("model=mlp", "model.depth=0")), (1, 8, 8), 10)
    assert [type(m).__name__ for m in model.modules() if len(list(m.parameters(recurse=False)))] == ["Linear"]


def test_resume_with_the_other_data_placement_continues_the_same_run(compose_cfg):
    columns = ["train_loss", "train_acc", "val_loss", "val_acc", "grad_norm"]
    first = train(compose_cfg("trainer.epochs=1", "trainer.checkpoint_every_s=0", "trainer.data_on_device=true")).run_dir
    train(compose_cfg("trainer.epochs=2", "trainer.data_on_device=false"), resume_dir=first)
    alone = train(compose_cfg("trainer.epochs=2", "trainer.data_on_device=true")).run_dir
    tables = [pd.read_csv(run / "metrics.csv")[columns] for run in (first, alone)]
    pd.testing.assert_frame_equal(*tables)


