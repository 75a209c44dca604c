"""Statistics of a group of runs: mean, standard error, t intervals, Welch's difference."""
from __future__ import annotations

import math

import pandas as pd


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df (possibly fractional) degrees of freedom
    (scipy.special: it imports in a fraction of scipy.stats' time)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with df degrees of freedom."""
    from scipy.special import stdtr

    return float(stdtr(df, -x))


def describe(values: pd.Series, confidence: float = 0.95) -> dict:
    """n, mean, std (n-1), standard error and the t confidence interval of the mean."""
    values = pd.Series(values, dtype=float).dropna()
    n = len(values)
    mean = values.mean() if n else math.nan
    std = values.std(ddof=1) if n > 1 else math.nan
    sem = std / math.sqrt(n) if n > 1 else math.nan
    half = t_quantile(0.5 + confidence / 2, n - 1) * sem if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "sem": sem, "ci_low": mean - half, "ci_high": mean + half}


def welch(a: dict, b: dict, confidence: float = 0.95) -> dict:
    """Difference of means a - b with Welch's CI (unequal variances) and two-sided p-value."""
    diff = a["mean"] - b["mean"]
    if a["n"] < 2 or b["n"] < 2:
        return {"diff": diff, "diff_ci_low": math.nan, "diff_ci_high": math.nan, "df": math.nan, "p_value": math.nan}
    va, vb = a["std"] ** 2 / a["n"], b["std"] ** 2 / b["n"]
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "diff_ci_low": diff, "diff_ci_high": diff, "df": math.nan,
                "p_value": 1.0 if diff == 0 else 0.0}
    df = (va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    return {"diff": diff, "diff_ci_low": diff - half, "diff_ci_high": diff + half, "df": df,
            "p_value": 2 * t_sf(abs(diff) / se, df)}
