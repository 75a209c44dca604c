"""Pairwise verdicts on one workload: contender a against b, on the reruns' per-seed values.

The difference of means a - b gets its 95% Welch interval (report.stats), read in the
metric's good direction (higher accuracy, lower loss) against the workload's declared
margin m, the smallest difference that matters:
- equivalent: the interval lies inside (-m, m) (checked first: a difference too small to
  matter is no win, however sure);
- better (a better than b): the interval lies wholly on a's good side of 0;
- worse: wholly on b's good side;
- inconclusive: anything else, or fewer than two finite values on either side.
Diverged reruns (no finite value) are left out and counted.
"""
from __future__ import annotations

import math

from optlab.report.stats import describe, welch

BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"


def summary(values: list[float]) -> dict:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    d = describe(finite)
    return {"n": int(d["n"]), "mean": d["mean"], "std": d["std"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
            "missing": len(values) - len(finite)}


def outcome(low: float, high: float, margin: float, maximize: bool) -> str:
    """The verdict for a - b's interval [low, high] (see the top)."""
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    if -margin < low and high < margin:
        return EQUIVALENT
    good_low, good_high = (low, high) if maximize else (-high, -low)
    if good_low > 0:
        return BETTER
    if good_high < 0:
        return WORSE
    return INCONCLUSIVE


def verdict(a: list[float], b: list[float], margin: float, maximize: bool) -> dict:
    sa, sb = summary(a), summary(b)
    diff = welch(sa, sb)
    result = {"diff": diff["diff"], "ci_low": diff["diff_ci_low"], "ci_high": diff["diff_ci_high"],
              "p_value": diff["p_value"], "n_a": sa["n"], "n_b": sb["n"], "margin": margin}
    enough = sa["n"] >= 2 and sb["n"] >= 2
    result["outcome"] = outcome(result["ci_low"], result["ci_high"], margin, maximize) if enough else INCONCLUSIVE
    return result
