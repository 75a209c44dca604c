"""Batch-size plans: sizes per epoch, the linear scaling rule, and what metrics.csv records."""
import csv
import math

import pytest

from optlab.config.compose import group_options
from optlab.errors import ConfigError
from optlab.optim.batching import BATCH_PLANS, batch_size_at, lr_scale
from optlab.training.api import train

N_TRAIN = 800  # moons: 1000 samples, 20% held out


def metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_every_registered_plan_has_a_yaml():
    assert set(BATCH_PLANS.names()) == set(group_options("batch"))


def test_fixed_and_full():
    assert [batch_size_at({"name": "fixed", "size": 64}, e, 1000) for e in range(3)] == [64, 64, 64]
    assert batch_size_at({"name": "fixed", "size": 5000}, 0, 1000) == 1000
    assert batch_size_at({"name": "full"}, 4, 1000) == 1000
    assert lr_scale({"name": "fixed", "size": 256}) == 1.0


def test_linear_scaling_multiplies_the_lr_by_size_over_base_size():
    cfg = {"name": "linear_scaling", "size": 256, "base_size": 64}
    assert lr_scale(cfg) == 4.0
    assert batch_size_at(cfg, 0, 1000) == 256


def test_increasing_multiplies_the_size_at_each_milestone_up_to_the_split():
    cfg = {"name": "increasing", "size": 32, "factor": 4, "milestones": [2, 3, 5]}
    sizes = [batch_size_at(cfg, epoch, 1000) for epoch in range(7)]
    assert sizes == [32, 32, 128, 512, 512, 1000, 1000]
    assert lr_scale(cfg) == 1.0


def test_bad_milestones_name_the_key():
    with pytest.raises(ConfigError, match="batch.milestones"):
        batch_size_at({"name": "increasing", "size": 32, "factor": 2, "milestones": [-1]}, 0, 100)


def test_metrics_record_the_scaled_lr_and_the_batch_size(compose_cfg):
    table = metrics(train(compose_cfg("data=moons", "batch=linear_scaling", "batch.size=200",
                                      "batch.base_size=50", "optimizer.lr=0.01")).run_dir)
    assert [float(r["lr"]) for r in table] == pytest.approx([0.04, 0.04])
    assert [int(r["batch_size"]) for r in table] == [200, 200]
    assert [int(r["step"]) for r in table] == [4, 8]


def test_increasing_grows_the_batch_keeps_the_lr_and_every_sample_per_epoch(compose_cfg):
    table = metrics(train(compose_cfg("data=moons", "batch=increasing", "batch.size=100", "batch.factor=2",
                                      "batch.milestones=[1]", "optimizer.lr=0.05")).run_dir)
    assert [int(r["batch_size"]) for r in table] == [100, 200]
    assert [float(r["lr"]) for r in table] == pytest.approx([0.05, 0.05])
    # one full pass per epoch: 800/100 steps, then 800/200
    assert [int(r["step"]) for r in table] == [8, 8 + 4]


@pytest.mark.parametrize("option", group_options("batch"))
def test_every_batch_option_trains_one_tiny_epoch(compose_cfg, option):
    result = train(compose_cfg(f"batch={option}", "trainer.epochs=1", "data=moons"))
    assert result.status == "completed"
    assert math.isfinite(result.summary["final_train_loss"])
