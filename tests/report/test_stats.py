"""t quantiles and Welch's difference against t tables and closed forms."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from testkit import T_975_DF1, T_975_DF2

from optlab import report


def test_t_quantiles_agree_with_tables_and_the_cauchy_closed_form():
    assert report.t_quantile(0.975, 1) == pytest.approx(T_975_DF1, rel=1e-6)
    assert report.t_quantile(0.975, 2) == pytest.approx(T_975_DF2, rel=1e-6)
    assert report.t_quantile(0.975, 1e6) == pytest.approx(1.959964, rel=1e-5)
    # df = 1 is the Cauchy distribution: P(T > x) = 1/2 - atan(x)/pi
    assert report.t_sf(2.0, 1) == pytest.approx(0.5 - math.atan(2.0) / math.pi, rel=1e-9)
    assert report.t_sf(0.0, 32 / 19) == pytest.approx(0.5)  # fractional df (Welch)


def test_welch_difference_and_interval():
    a = report.describe(pd.Series([1.0, 2.0, 3.0]))  # mean 2, var 1
    b = report.describe(pd.Series([4.0, 6.0]))       # mean 5, var 2
    out = report.welch(a, b)
    # se^2 = 1/3 + 2/2 = 4/3; df = (4/3)^2 / ((1/3)^2/2 + 1^2/1) = (16/9) / (19/18) = 32/19
    df = 32 / 19
    half = report.t_quantile(0.975, df) * math.sqrt(4 / 3)
    assert out["diff"] == -3.0 and out["df"] == pytest.approx(df)
    assert (out["diff_ci_low"], out["diff_ci_high"]) == (pytest.approx(-3 - half), pytest.approx(-3 + half))
    assert 0 < out["p_value"] < 1
    one = report.describe(pd.Series([1.0]))
    assert math.isnan(report.welch(one, b)["diff_ci_low"])


# scipy.stats and numpy compute the same intervals independently of optlab's arithmetic
@pytest.mark.parametrize("values", [[0.97, 0.99, 1.0, 0.995, 0.93], [0.1, 0.9], [0.62, 0.64, 0.61], [0.0, 0.02, 0.0]])
def test_an_accuracys_interval_is_the_t_interval_cut_to_0_1(values):
    import numpy as np
    from scipy import stats

    n, mean, sem = len(values), float(np.mean(values)), stats.sem(values)
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sem)
    got = report.describe(pd.Series(values), bounds=report.value_range("val_acc"))
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(max(low, 0.0)), pytest.approx(min(high, 1.0)))
    assert 0.0 <= got["ci_low"] <= got["mean"] <= got["ci_high"] <= 1.0
    plain = report.describe(pd.Series(values))  # an unbounded metric keeps the plain t interval
    assert (plain["ci_low"], plain["ci_high"]) == (pytest.approx(low), pytest.approx(high))


def test_a_difference_of_accuracies_keeps_welchs_interval_inside_minus_1_1():
    from scipy import stats

    a_values, b_values = [0.98, 0.2, 0.99], [0.05, 0.1]
    a, b = (report.describe(pd.Series(v), bounds=report.value_range("val_acc")) for v in (a_values, b_values))
    expected = stats.ttest_ind(a_values, b_values, equal_var=False).confidence_interval(0.95)
    assert expected.high > 1  # the plain Welch interval leaves the range
    got = report.welch(a, b, bounds=report.value_range("val_acc"))
    assert (got["diff_ci_low"], got["diff_ci_high"]) == (pytest.approx(expected.low), 1.0)
    plain = report.welch(a, b)
    assert (plain["diff_ci_low"], plain["diff_ci_high"]) == (pytest.approx(expected.low), pytest.approx(expected.high))


def test_cutting_to_the_range_keeps_the_coverage_of_the_t_interval():
    """Accuracies near 1 (Beta(40, 2) per seed, 5 seeds): the cut interval covers the true mean
    in exactly the draws the t interval does."""
    import numpy as np

    rng = np.random.default_rng(0)
    true_mean = 40 / 42
    draws = rng.beta(40, 2, size=(2000, 5))
    cut = plain = 0
    for values in draws:
        c, p = report.describe(pd.Series(values), bounds=(0.0, 1.0)), report.describe(pd.Series(values))
        cut += c["ci_low"] <= true_mean <= c["ci_high"]
        plain += p["ci_low"] <= true_mean <= p["ci_high"]
        assert c["ci_high"] <= 1.0
    assert cut == plain and 0.85 < cut / len(draws) < 0.99


def test_which_values_a_metric_can_take():
    assert report.value_range("val_acc") == report.value_range("best_test_acc") == (0.0, 1.0)
    assert report.value_range("saturated_frac") == (0.0, 1.0)
    assert report.value_range("val_loss") == report.value_range("wall_time_s") == (0.0, math.inf)
    assert report.value_range("act_mean") == (-math.inf, math.inf)
    assert report.range_text((0.0, 1.0)) == "[0, 1]" and report.range_text((0.0, math.inf)) == "[0, inf)"
