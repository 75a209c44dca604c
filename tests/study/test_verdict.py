"""The verdict logic on constructed per-seed values: a clear effect, no effect, mixed seeds."""
import math

import pytest

from optlab.study.verdict import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    judge,
    overall,
    paired,
)

WELCH = {"kind": "welch", "measure": "acc", "a": "a", "b": "b", "direction": "greater"}


def seeds(*values):
    return dict(enumerate(values))


def test_a_clear_effect_is_reproduced_with_the_welch_interval_by_hand():
    a, b = seeds(0.90, 0.92, 0.94), seeds(0.50, 0.52, 0.54)
    result = judge(WELCH, {"a": a, "b": b})
    # equal variances 0.0004 and n=3: se = sqrt(2 * 0.0004 / 3), df = 4, t(0.975, 4) = 2.776445
    se = math.sqrt(2 * 0.0004 / 3)
    assert result["effect"]["diff"] == pytest.approx(0.40)
    assert result["effect"]["ci_low"] == pytest.approx(0.40 - 2.776445 * se, rel=1e-5)
    assert result["effect"]["ci_high"] == pytest.approx(0.40 + 2.776445 * se, rel=1e-5)
    assert result["outcome"] == REPRODUCED
    assert result["arms"]["a"]["n"] == 3 and result["arms"]["a"]["mean"] == pytest.approx(0.92)


def test_the_opposite_effect_is_not_reproduced():
    result = judge(WELCH, {"a": seeds(0.5, 0.52, 0.54), "b": seeds(0.9, 0.92, 0.94)})
    assert result["outcome"] == NOT_REPRODUCED


def test_no_effect_is_inconclusive_without_a_margin_and_not_reproduced_below_it():
    values = {"a": seeds(0.90, 0.93, 0.91, 0.92), "b": seeds(0.91, 0.92, 0.90, 0.93)}
    assert judge(WELCH, values)["outcome"] == INCONCLUSIVE
    assert judge({**WELCH, "margin": 0.1}, values)["outcome"] == NOT_REPRODUCED


def test_mixed_seeds_leave_the_interval_across_zero():
    values = {"a": seeds(0.95, 0.40, 0.97, 0.35), "b": seeds(0.60, 0.61, 0.59, 0.60)}
    assert judge(WELCH, values)["outcome"] == INCONCLUSIVE


def test_every_seed_needs_every_seed():
    c = {"kind": "every_seed", "measure": "r", "arm": "a", "op": "<", "threshold": 0.1}
    assert judge(c, {"a": seeds(0.01, 0.02, 0.05)})["outcome"] == REPRODUCED
    mixed = judge(c, {"a": seeds(0.01, 0.5, 0.05)})
    assert mixed["outcome"] == NOT_REPRODUCED and mixed["effect"]["seeds_passing"] == 2
    assert judge(c, {"a": seeds(0.5, 0.6)})["outcome"] == NOT_REPRODUCED
    assert judge(c, {"a": {}})["outcome"] == INCONCLUSIVE
    assert judge(c, {"a": seeds(0.01, math.nan)})["outcome"] == NOT_REPRODUCED  # a missing seed fails


def test_every_seed_pairs_a_and_b_seed_by_seed():
    c = {"kind": "every_seed", "measure": "steps", "a": "a", "b": "b", "of": "ratio", "op": "<", "threshold": 1.0}
    values = {"a": {0: 50.0, 1: 60.0}, "b": {1: 100.0, 0: 40.0}}
    assert paired(c, values) == {0: 1.25, 1: 0.6}
    assert judge(c, values)["outcome"] == NOT_REPRODUCED
    assert paired({**c, "of": "diff"}, values) == {0: 10.0, 1: -40.0}


def test_equivalence_inside_outside_and_across_the_margin():
    c = {"kind": "equivalent", "measure": "acc", "a": "a", "b": "b", "margin": 0.02}
    assert judge(c, {"a": seeds(0.950, 0.952, 0.951), "b": seeds(0.951, 0.949, 0.950)})["outcome"] == REPRODUCED
    assert judge(c, {"a": seeds(0.80, 0.81, 0.82), "b": seeds(0.95, 0.96, 0.97)})["outcome"] == NOT_REPRODUCED
    assert judge(c, {"a": seeds(0.90, 0.99, 0.94), "b": seeds(0.95, 0.94, 0.96)})["outcome"] == INCONCLUSIVE


def test_log_compares_ratios_and_single_seeds_are_inconclusive():
    c = {**WELCH, "direction": "less", "log": True}
    result = judge(c, {"a": seeds(10.0, 11.0, 9.0), "b": seeds(100.0, 110.0, 90.0)})
    assert result["outcome"] == REPRODUCED and 10 ** result["effect"]["diff"] == pytest.approx(0.1, rel=1e-6)
    assert judge(WELCH, {"a": seeds(0.9), "b": seeds(0.1, 0.2)})["outcome"] == INCONCLUSIVE


def test_the_verdict_needs_every_criterion_and_quick_is_never_a_reproduction():
    assert overall([REPRODUCED, REPRODUCED], quick=False)["verdict"] == REPRODUCED
    assert overall([REPRODUCED, INCONCLUSIVE], quick=False)["verdict"] == INCONCLUSIVE
    assert overall([REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE], quick=False)["verdict"] == NOT_REPRODUCED
    quick = overall([REPRODUCED], quick=True)
    assert quick == {"verdict": INCONCLUSIVE, "quick": True, "quick_outcome": REPRODUCED}


@pytest.mark.parametrize("a, b, direction, expected", [
    (seeds(0.950, 0.951, 0.952), seeds(0.950, 0.951, 0.952), "greater", REPRODUCED),  # equal: within the margin
    (seeds(0.97, 0.98, 0.99), seeds(0.90, 0.91, 0.92), "greater", REPRODUCED),      # better
    (seeds(0.80, 0.81, 0.82), seeds(0.90, 0.91, 0.92), "greater", NOT_REPRODUCED),  # worse by far more than 0.01
    (seeds(0.80, 0.95, 0.99), seeds(0.90, 0.91, 0.92), "greater", INCONCLUSIVE),    # too wide to tell
    (seeds(0.80, 0.81, 0.82), seeds(0.90, 0.91, 0.92), "less", REPRODUCED),         # a loss: a lower is better
    (seeds(0.97, 0.98, 0.99), seeds(0.90, 0.91, 0.92), "less", NOT_REPRODUCED),
])
def test_noninferior_is_not_worse_by_the_margin(a, b, direction, expected):
    criterion = {"kind": "noninferior", "measure": "acc", "a": "a", "b": "b", "direction": direction, "margin": 0.01}
    result = judge(criterion, {"a": a, "b": b})
    assert result["outcome"] == expected
    assert "not worse than" in result["criterion"] and "not" in result["label"]


def test_noninferior_reads_the_interval_against_minus_the_margin_by_hand():
    # a - b: mean -0.005, se = sqrt(2 * 0.0001 / 3), df 4: [-0.005 - 2.776445 se, -0.005 + 2.776445 se]
    a, b = seeds(0.905, 0.915, 0.925), seeds(0.91, 0.92, 0.93)
    half = 2.776445 * math.sqrt(2 * 0.0001 / 3)
    result = judge({"kind": "noninferior", "measure": "acc", "a": "a", "b": "b", "direction": "greater",
                    "margin": 0.03}, {"a": a, "b": b})
    assert result["effect"]["ci_low"] == pytest.approx(-0.005 - half, rel=1e-5)
    assert -0.005 - half > -0.03 and result["outcome"] == REPRODUCED
    narrow = judge({"kind": "noninferior", "measure": "acc", "a": "a", "b": "b", "direction": "greater",
                    "margin": 0.02}, {"a": a, "b": b})
    assert -0.005 - half < -0.02 and narrow["outcome"] == INCONCLUSIVE
def test_intervals_of_a_bounded_measure_stay_inside_what_it_can_be():
    every = {"kind": "every_seed", "measure": "val_acc", "arm": "a", "op": ">", "threshold": 0.5}
    near_one = {"a": seeds(0.97, 1.0, 0.91), "b": seeds(0.2, 0.9)}
    plain = judge(every, near_one)["effect"]
    assert plain["ci_high"] > 1  # the plain t interval: [0.8846, 1.0254]
    cut = judge(every, near_one, bounds=(0.0, 1.0))["effect"]
    assert (cut["ci_low"], cut["ci_high"]) == (pytest.approx(plain["ci_low"]), 1.0)
    wide = judge({**WELCH, "a": "b", "b": "a"}, near_one, bounds=(0.0, 1.0))
    assert wide["arms"]["b"]["ci_low"] == 0.0 and wide["arms"]["b"]["ci_high"] == 1.0  # n=2: [-0.3853, 1.4853]
    assert -1.0 <= wide["effect"]["ci_low"] <= wide["effect"]["ci_high"] <= 1.0
    ratio = judge({"kind": "every_seed", "measure": "val_acc", "a": "a", "b": "b", "op": ">", "threshold": 0.0},
                  near_one, bounds=(0.0, 1.0))
    assert ratio["arms"]["a/b"]["ci_low"] >= 0.0  # a ratio of accuracies: [0, inf)
