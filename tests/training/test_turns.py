"""Runs in lockstep (train_many's `lockstep` hook): one population when they share a structure,
else in turns (runner/training/turns.py); a member copied into another bitwise, in both."""
from __future__ import annotations

import csv

import pytest
import torch

from optlab.training.api import RunRequest, train_many
from optlab.training.driver import BetweenEpochs


def equal_trees(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal_trees(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(equal_trees(x, y) for x, y in zip(a, b))
    return a == b


class CopyAfterFirstEpoch(BetweenEpochs):
    """After epoch 0: member 2 takes member 0's state; checks it is bitwise the donor's."""

    def __init__(self):
        self.engines, self.checked = [], False

    def start(self, driver):
        self.engines.append(type(driver.engine).__name__)

    def end(self, driver, epoch, rows):
        if epoch != 0:
            return
        engine = driver.engine
        before = {name: t.clone() for name, t in engine.model_state(2).items()}
        engine.copy_member(0, 2)
        assert equal_trees(dict(engine.model_state(2)), dict(engine.model_state(0)))
        assert not equal_trees(dict(engine.model_state(2)), before)
        donor, taker = engine.optimizer(0).state_dict()["state"], engine.optimizer(2).state_dict()["state"]
        assert donor and equal_trees(taker, donor)
        self.checked = True


def metric_rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("overrides, engine", [
    (["optimizer=momentum", "norm=batch"], "StackedEngine"),
    (["optimizer=lbfgs", "norm=batch", "optimizer.max_iter=3"], "TurnsEngine"),  # no functional form: in turns
])
def test_a_member_copied_into_another_is_bitwise_the_donor_and_keeps_its_own_data_order(compose_cfg, overrides, engine):
    cfgs = [compose_cfg("model.width=16", *overrides, f"optimizer.lr={lr}", f"trainer.seed={seed}")
            for lr, seed in ((0.05, 0), (0.1, 1), (0.2, 2))]
    hook = CopyAfterFirstEpoch()
    results = train_many([RunRequest(c) for c in cfgs], lockstep=hook)
    assert hook.checked and hook.engines == [engine]
    assert [r.status for r in results] == ["completed"] * 3
    donor, taker = metric_rows(results[0].run_dir), metric_rows(results[2].run_dir)
    assert donor[1]["train_loss"] != taker[1]["train_loss"]  # epoch 1: the same weights, its own batches and lr


def test_a_lockstep_hook_sees_every_members_row_of_each_epoch_and_members_record_their_keys(compose_cfg):
    seen = []

    class Watch(BetweenEpochs):
        def end(self, driver, epoch, rows):
            seen.append((epoch, sorted(rows)))

    cfgs = [compose_cfg(f"optimizer.lr={lr}") for lr in (0.05, 0.1)]
    results = train_many([RunRequest(c, columns=("optimizer.lr",)) for c in cfgs], lockstep=Watch())
    assert seen == [(0, [0, 1]), (1, [0, 1])]
    assert [float(r["optimizer.lr"]) for r in metric_rows(results[1].run_dir)] == [0.1, 0.1]
