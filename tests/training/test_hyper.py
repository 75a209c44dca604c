"""Hyper-parameters changed while a run trains (runner/training/hyper.py)."""
from __future__ import annotations

import pytest
import torch

from optlab.training.build import build
from optlab.training.hyper import set_values, value_of, why_fixed


@pytest.mark.parametrize("key, fixed", [("optimizer.lr", False), ("optimizer.weight_decay", False),
                                        ("schedule.gamma", False), ("regularize.clip_norm", False),
                                        ("regularize.label_smoothing", False), ("model.width", True),
                                        ("trainer.seed", True), ("init.gain", True), ("optimizer.name", True),
                                        ("optimizer.betas", True), ("regularize.dropout", True)])
def test_the_keys_that_may_change_are_the_numbers_the_step_reads_afresh(key, fixed):
    assert (why_fixed(key) is not None) == fixed


def test_set_values_reaches_the_optimizer_the_lr_the_schedule_starts_from_and_the_loss(compose_cfg):
    parts = build(compose_cfg("optimizer=momentum", "batch=linear_scaling"))
    scale = parts.lr0 / float(parts.cfg["optimizer"]["lr"])
    state_before = dict(parts.optimizer.state)
    set_values(parts, {"optimizer.lr": 0.02, "optimizer.momentum": 0.5, "optimizer.weight_decay": 1e-3,
                       "regularize.label_smoothing": 0.5})
    group = parts.optimizer.param_groups[0]
    assert (group["momentum"], group["weight_decay"]) == (0.5, 1e-3)
    assert parts.lr0 == pytest.approx(0.02 * scale) and value_of(parts.cfg, "optimizer.lr") == 0.02
    out, y = torch.tensor([[4.0, 0.0]]), torch.tensor([0])
    assert parts.loss(out, y) == pytest.approx(torch.nn.functional.cross_entropy(out, y, label_smoothing=0.5))
    assert dict(parts.optimizer.state) == state_before  # the state stays
