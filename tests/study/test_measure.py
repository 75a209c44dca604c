"""Measures against hand-computed values."""
import math

import pytest
import torch

from optlab.study.measure import (
    combine,
    metric_value,
    reduce_layers,
    spread_of,
    to_target,
)

ROWS = [{"epoch": 0, "step": 10, "train_loss": 1.0, "train_acc": 0.6, "val_acc": 0.5},  # as metrics.csv: the first
        {"epoch": 1, "step": 20, "train_loss": 0.4, "train_acc": 0.9, "val_acc": 0.8},  # epoch is epoch 0
        {"epoch": 2, "step": 30, "train_loss": 0.2, "train_acc": 1.0, "val_acc": 0.7}]


def test_metric_at_final_best_and_an_epoch_and_a_gap():
    assert metric_value(ROWS, {"column": "val_acc"}) == 0.7
    assert metric_value(ROWS, {"column": "val_acc", "at": "best"}) == 0.8
    assert metric_value(ROWS, {"column": "train_loss", "at": "best"}) == 0.2
    assert metric_value(ROWS, {"column": "val_acc", "at": 1}) == 0.8  # metrics.csv's epoch 1
    assert metric_value(ROWS, {"column": "train_acc", "minus": "val_acc"}) == pytest.approx(0.3)


def test_steps_to_target_and_the_censored_budget():
    assert to_target(ROWS, {"column": "train_loss", "target": 0.5}, epochs=3) == (20.0, False)
    assert to_target(ROWS, {"column": "val_acc", "target": 0.75, "op": ">="}, epochs=3) == (20.0, False)
    assert to_target(ROWS, {"column": "train_loss", "target": 0.5, "unit": "epochs"}, epochs=3) == (2.0, False)  # 20 steps
    assert to_target(ROWS, {"column": "train_loss", "target": 2.0, "unit": "epochs"}, epochs=3) == (1.0, False)
    diverged = ROWS[:1]  # one epoch of 10 steps, then it diverged: the budget of 5 epochs, censored
    assert to_target(diverged, {"column": "train_loss", "target": 0.1}, epochs=5) == (50.0, True)


def test_layer_reductions():
    values = [1.0, 0.5, 0.25, 0.125]
    assert reduce_layers(values, "ratio") == 0.125
    assert reduce_layers(values, "per_layer") == pytest.approx(0.5)
    assert reduce_layers(values, "first") == 1.0 and reduce_layers(values, "last") == 0.125
    assert reduce_layers(values, "mean") == pytest.approx(0.46875)


def test_unit_spread_is_zero_for_identical_units_and_by_hand_otherwise():
    assert spread_of(torch.zeros(4, 3, dtype=torch.float64)) == 0.0
    assert spread_of(torch.full((4, 3), 0.7, dtype=torch.float64)) == 0.0
    w = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)  # mean row 0: spread = ||W|| / ||W|| = 1
    assert spread_of(w) == pytest.approx(1.0)
    w = torch.tensor([[1.0, 1.0], [1.0, 3.0]], dtype=torch.float64)  # centered [[0,-1],[0,1]]: sqrt(2)/sqrt(12)
    assert spread_of(w) == pytest.approx(math.sqrt(2 / 12))


def test_variants_of_a_seed_combine_by_their_best():
    assert combine(None, 5.0, None) == 5.0
    assert combine(5.0, 3.0, "min") == 3.0 and combine(5.0, 3.0, "max") == 5.0
    assert combine(math.nan, 3.0, "min") == 3.0


def test_unit_spread_never_exceeds_1():  # centring the rows is a projection
    torch.manual_seed(0)
    assert all(spread_of(torch.randn(8, 5, dtype=torch.float64) + shift) <= 1.0 for shift in (0.0, 3.0, -10.0))


def test_the_values_each_kind_of_measure_can_take():
    from optlab.study.measure import measure_range
    from optlab.study.spec import load_study

    inf = math.inf
    assert measure_range(load_study("ioffe2015_batchnorm"), "val_acc") == (0.0, 1.0)
    assert measure_range(load_study("srivastava2014_dropout"), "gap") == (-1.0, 1.0)  # train_acc - val_acc
    assert measure_range(load_study("symmetry"), "unit_spread") == (0.0, 1.0)
    assert measure_range(load_study("saturation"), "saturated") == (0.0, 1.0)
    assert measure_range(load_study("he2015_deep_relu"), "signal_per_layer") == (0.0, inf)
    assert measure_range(load_study("momentum_ill_conditioned"), "steps_to_tol") == (0.0, inf)
    assert measure_range(load_study("bergstra2012_random_search"), "best_val_loss") == (0.0, inf)
