"""Pairwise verdicts: equivalence first, then the side of 0, in the metric's good direction."""
import math

import pytest

from optlab.compare.pairwise import outcome, verdict
from optlab.report.stats import describe, welch


@pytest.mark.parametrize("low, high, maximize, expected", [
    (-0.004, 0.006, True, "equivalent"),   # inside (-0.01, 0.01)
    (0.002, 0.008, True, "equivalent"),    # above 0 but too small to matter
    (0.002, 0.03, True, "better"),
    (-0.03, -0.002, True, "worse"),
    (-0.02, 0.03, True, "inconclusive"),
    (-0.03, -0.002, False, "better"),      # a loss: a lower than b is better
    (0.002, 0.03, False, "worse"),
    (math.nan, math.nan, True, "inconclusive"),
])
def test_outcome_of_an_interval_against_a_margin_of_0_01(low, high, maximize, expected):
    assert outcome(low, high, 0.01, maximize) == expected


def test_the_verdict_is_welchs_interval_of_the_finite_seeds():
    a, b = [0.95, 0.96, 0.97, 0.96], [0.90, 0.91, 0.93, math.nan]
    result = verdict(a, b, 0.01, maximize=True)
    expected = welch(describe(a), describe(b[:3]))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((expected["diff_ci_low"], expected["diff_ci_high"]))
    assert (result["n_a"], result["n_b"], result["outcome"]) == (4, 3, "better")


def test_fewer_than_two_finite_seeds_is_inconclusive():
    assert verdict([0.9, 0.91], [0.5, math.nan], 0.01, True)["outcome"] == "inconclusive"
