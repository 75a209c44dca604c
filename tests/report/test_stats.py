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
