"""Sampling a conditional space, and coarse-to-fine refinement around the best trials."""
from __future__ import annotations

import math

import optuna
from testkit import REPO

from optlab.sweep.outputs import assignment_of_row, best_rows
from optlab.sweep.space import refine_space, suggest, to_overrides
from optlab.sweep.spec import read_sweep_file, spec_from_dict


def test_conditional_parameters_follow_their_condition():
    spec = spec_from_dict(read_sweep_file(REPO / "sweeps" / "optimizers.yaml")[0])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        assignment = suggest(study.ask(), spec.space)
        family = assignment["optimizer"]
        seen.add(family)
        assert ("optimizer.momentum" in assignment) == (family in ("momentum", "nesterov"))
        overrides = to_overrides(spec.space, assignment)
        assert sum(o.startswith("optimizer.lr=") for o in overrides) == 1
    assert len(seen) >= 4


def test_refine_narrows_in_log_space_around_the_top_trials():
    spec = spec_from_dict({"study": "s", "space": {
        "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "norm": ["none", "batch", "layer"]}})
    rows = [{"state": "COMPLETE", "status": "completed", "value": str(v), "param.optimizer.lr": str(lr),
             "param.norm": norm} for v, lr, norm in
            [(0.97, 0.01, "batch"), (0.96, 0.02, "batch"), (0.95, 0.03, "none"), (0.2, 0.9, "layer"),
             (0.1, 1e-4, "layer")]]
    rows.append({"state": "COMPLETE", "status": "diverged", "value": "0.99", "param.optimizer.lr": "1.0",
                 "param.norm": "layer"})
    best = [assignment_of_row(spec.space, r) for r in best_rows(rows, spec.direction, 3)]
    lr, norm = refine_space(spec.space, best)
    assert 1e-4 < lr.low <= 0.01 and 0.03 <= lr.high < 1.0
    assert math.log(lr.high / lr.low) < 0.5 * math.log(1.0 / 1e-4)
    assert norm.choices == ("none", "batch")
