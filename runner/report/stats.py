"""Statistics of a group of runs: mean, standard error, t intervals, Welch's difference.

An interval never leaves the values its metric can take: Student's (or Welch's) t interval
is intersected with the metric's range ([0, 1] for accuracies and fractions, [0, inf) for
losses, norms, times and counts; unbounded metrics keep the plain interval). The true mean
always lies in that range, so the intersection contains it exactly when the t interval
does: the coverage stays the t interval's."""
from __future__ import annotations

import math

import pandas as pd

ANY = (-math.inf, math.inf)
UNIT = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)

UNIT_SUFFIXES = ("_acc", "_frac")  # accuracies; fractions of units (layers.csv's saturated_frac, dead_frac)
NON_NEGATIVE_SUFFIXES = ("_loss", "_time_s", "wall_time_s", "grad_norm", "_std", "update_ratio", "samples_per_s")
NON_NEGATIVE_NAMES = ("lr", "epoch", "step", "steps", "epochs", "epochs_done", "batch_size")


def value_range(column: str) -> tuple[float, float]:
    """The values a metric can take, from its name (summary numbers' best_/final_ aside)."""
    name = column.removeprefix("best_").removeprefix("final_")
    if name.endswith(UNIT_SUFFIXES):
        return UNIT
    if name.endswith(NON_NEGATIVE_SUFFIXES) or name in NON_NEGATIVE_NAMES:
        return NON_NEGATIVE
    return ANY


def difference_range(a: tuple[float, float], b: tuple[float, float] | None = None) -> tuple[float, float]:
    """The values x - y can take for x in range a and y in range b (default a): [0, 1] -> [-1, 1]."""
    b = a if b is None else b
    return a[0] - b[1], a[1] - b[0]


def range_text(bounds: tuple[float, float]) -> str:
    """[0, 1], [0, inf): how captions and the README write a range."""
    low, high = ("-inf" if v == -math.inf else "inf" if v == math.inf else f"{v:g}" for v in bounds)
    return f"{'(' if low == '-inf' else '['}{low}, {high}{')' if high == 'inf' else ']'}"


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df (possibly fractional) degrees of freedom
    (scipy.special: it imports in a fraction of scipy.stats' time)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with df degrees of freedom."""
    from scipy.special import stdtr

    return float(stdtr(df, -x))


def describe(values: pd.Series, confidence: float = 0.95, bounds: tuple[float, float] = ANY) -> dict:
    """n, mean, std (n-1), standard error and the t confidence interval of the mean, inside
    the metric's range."""
    values = pd.Series(values, dtype=float).dropna()
    n = len(values)
    mean = values.mean() if n else math.nan
    std = values.std(ddof=1) if n > 1 else math.nan
    sem = std / math.sqrt(n) if n > 1 else math.nan
    half = t_quantile(0.5 + confidence / 2, n - 1) * sem if n > 1 else math.nan
    low, high = _inside(mean, half, bounds)
    return {"n": n, "mean": mean, "std": std, "sem": sem, "ci_low": low, "ci_high": high}


def welch(a: dict, b: dict, confidence: float = 0.95, bounds: tuple[float, float] = ANY) -> dict:
    """Difference of means a - b with Welch's CI (unequal variances), inside the range a - b
    can take when a and b are in `bounds`, and the two-sided p-value."""
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
    low, high = _inside(diff, half, difference_range(bounds))
    return {"diff": diff, "diff_ci_low": low, "diff_ci_high": high, "df": df,
            "p_value": 2 * t_sf(abs(diff) / se, df)}


def _inside(center: float, half: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """center +- half intersected with the range (NaN stays NaN; a center outside the range,
    data the range does not describe, keeps the plain interval)."""
    low, high = center - half, center + half
    if math.isnan(half) or not bounds[0] <= center <= bounds[1]:
        return low, high
    return max(low, bounds[0]), min(high, bounds[1])
