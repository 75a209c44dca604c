"""Criteria -> outcomes -> the verdict: reproduced, not_reproduced or inconclusive.

Each criterion is judged on per-seed values ({arm: {seed: value}}) alone:
- welch: mean(a) - mean(b) in the claimed direction. Reproduced when the 95% Welch interval
  lies on the claimed side of 0; not reproduced when it lies below `margin` (the smallest
  effect the claim means; default 0) on that side; otherwise inconclusive. An interval that
  does both (above 0, below a positive margin) is reproduced: the rule as the shipped
  studies were written with it. `log: true`
  compares log10 values (ratios). Fewer than two finite values in an arm: inconclusive.
- equivalent: |mean(a) - mean(b)| small. Reproduced when the Welch interval lies inside
  (-margin, margin); not reproduced when it lies wholly outside; otherwise inconclusive.
- noninferior: a is not worse than b by `margin` or more (equivalent or better), in the
  claimed direction. Reproduced when the Welch interval lies above -margin on that side; not
  reproduced when it lies wholly below -margin; otherwise inconclusive.
- every_seed: the arm's value (or, with `b`, the paired ratio a/b or difference a-b of the
  same seed) is `op` threshold in every seed. All seeds: reproduced; any seed failing: not
  reproduced (the claim says every seed); no seeds: inconclusive.
The study's verdict is reproduced when every criterion is, not_reproduced when any is not,
else inconclusive. A quick run's verdict is never a reproduction: it says inconclusive and
keeps what the criteria gave under `quick_outcome`.
"""
from __future__ import annotations

import math

from optlab.report.stats import ANY, NON_NEGATIVE, describe, difference_range, welch

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not_reproduced", "inconclusive"
Values = dict[str, dict[int, float]]  # arm -> seed -> value


def finite(values: dict[int, float], log: bool = False) -> list[float]:
    out = [float(v) for v in values.values() if v is not None and math.isfinite(float(v))]
    if log:
        out = [math.log10(v) for v in out if v > 0]
    return out


def arm_summary(values: dict[int, float], log: bool = False, bounds: tuple[float, float] = ANY) -> dict:
    """n, mean and 95% t-interval of an arm's finite per-seed values (log10 ones with log),
    inside `bounds`, the values the measure can take (measure.measure_range)."""
    d = describe(finite(values, log), bounds=ANY if log else bounds)
    return {"n": int(d["n"]), "mean": d["mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "std": d["std"],
            "missing": len(values) - int(d["n"])}


def judge(criterion: dict, values: Values, bounds: tuple[float, float] = ANY) -> dict:
    """One criterion's outcome: its arms' summaries, the effect with its interval (inside what
    the measure, whose values lie in `bounds`, can give), and the outcome."""
    kind = criterion["kind"]
    if kind == "every_seed":
        return _every_seed(criterion, values, bounds)
    log = bool(criterion.get("log"))
    a, b = arm_summary(values[criterion["a"]], log, bounds), arm_summary(values[criterion["b"]], log, bounds)
    diff = welch(_stats(a), _stats(b), bounds=ANY if log else bounds)
    effect = {"diff": diff["diff"], "ci_low": diff["diff_ci_low"], "ci_high": diff["diff_ci_high"],
              "p_value": diff["p_value"], "scale": "log10" if log else "linear"}
    if a["n"] < 2 or b["n"] < 2 or math.isnan(effect["ci_low"]):
        outcome = INCONCLUSIVE
    elif kind == "welch":
        outcome = _directional(effect, criterion["direction"], float(criterion.get("margin", 0.0)))
    elif kind == "noninferior":
        outcome = _noninferior(effect, criterion["direction"], float(criterion["margin"]))
    else:
        outcome = _equivalence(effect, float(criterion["margin"]))
    return {"criterion": describe_criterion(criterion), "label": label_of(criterion),
            "arms": {criterion["a"]: a, criterion["b"]: b},
            "effect": effect, "outcome": outcome}


def _stats(summary: dict) -> dict:
    return {"n": summary["n"], "mean": summary["mean"], "std": summary["std"]}


def _directional(effect: dict, direction: str, margin: float) -> str:
    sign = 1.0 if direction == "greater" else -1.0
    low, high = sorted((sign * effect["ci_low"], sign * effect["ci_high"]))
    if low > 0:
        return REPRODUCED
    if high < margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _noninferior(effect: dict, direction: str, margin: float) -> str:
    sign = 1.0 if direction == "greater" else -1.0
    low, high = sorted((sign * effect["ci_low"], sign * effect["ci_high"]))
    if low > -margin:
        return REPRODUCED
    if high < -margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def _equivalence(effect: dict, margin: float) -> str:
    low, high = effect["ci_low"], effect["ci_high"]
    if -margin < low and high < margin:
        return REPRODUCED
    if low >= margin or high <= -margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def paired(criterion: dict, values: Values) -> dict[int, float]:
    """The per-seed values every_seed judges: the arm's, or a/b or a-b seed by seed."""
    a = values[criterion.get("arm") or criterion["a"]]
    if "b" not in criterion:
        return dict(a)
    b = values[criterion["b"]]
    ratio = _pairing(criterion) == "/"
    out = {}
    for seed in sorted(set(a) & set(b)):
        x, y = float(a[seed]), float(b[seed])
        out[seed] = (x / y if y != 0 else math.nan) if ratio else x - y
    return out


def _pairing(c: dict) -> str:
    """How every_seed pairs two arms' values of a seed: "/" (ratio, the default) or "-" (diff)."""
    return "/" if c.get("of", "ratio") == "ratio" else "-"


def _every_seed(criterion: dict, values: Values, bounds: tuple[float, float]) -> dict:
    per_seed = paired(criterion, values)
    threshold = float(criterion["threshold"])
    passes = {s: _passes(v, criterion["op"], threshold) for s, v in per_seed.items()}
    if not passes:
        outcome = INCONCLUSIVE
    else:
        outcome = REPRODUCED if all(passes.values()) else NOT_REPRODUCED
    label = criterion.get("arm") or f"{criterion['a']}{_pairing(criterion)}{criterion['b']}"
    summary = arm_summary(per_seed, bounds=_paired_range(criterion, bounds))
    effect = {"mean": summary["mean"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
              "min": min(per_seed.values(), default=math.nan), "max": max(per_seed.values(), default=math.nan),
              "seeds_passing": sum(passes.values()), "seeds": len(passes)}
    return {"criterion": describe_criterion(criterion), "label": label_of(criterion), "arms": {label: summary},
            "effect": effect,
            "per_seed": per_seed, "outcome": outcome}


def _paired_range(c: dict, bounds: tuple[float, float]) -> tuple[float, float]:
    """What every_seed's per-seed values can be: the measure's, a ratio's or a difference's."""
    if "b" not in c:
        return bounds
    if _pairing(c) == "-":
        return difference_range(bounds)
    return NON_NEGATIVE if bounds[0] >= 0 else ANY


def _passes(value: float, op: str, threshold: float) -> bool:
    if value is None or not math.isfinite(value):
        return False
    return value < threshold if op == "<" else value > threshold


def label_of(c: dict) -> str:
    """The criterion in a few words, for tables."""
    if c["kind"] == "every_seed":
        subject = c.get("arm") or f"{c['a']} {_pairing(c)} {c['b']}"
        return f"{c['measure']}: {subject} {c['op']} {c['threshold']:g} in every seed"
    f = "log10 " if c.get("log") else ""
    if c["kind"] == "equivalent":
        return f"{f}{c['measure']}: {c['a']} - {c['b']} within +-{c['margin']:g}"
    if c["kind"] == "noninferior":
        worse = "<" if c["direction"] == "greater" else ">"
        return f"{f}{c['measure']}: {c['a']} not {worse} {c['b']} by {c['margin']:g}"
    return f"{f}{c['measure']}: {c['a']} - {c['b']} {'>' if c['direction'] == 'greater' else '<'} 0"


def describe_criterion(c: dict) -> str:
    """The criterion in words, as study.md and verdict.json state it."""
    measure = c["measure"]
    if c["kind"] == "every_seed":
        if "b" in c:
            subject = f"{measure}({c['a']}) {_pairing(c)} {measure}({c['b']})"
        else:
            subject = f"{measure}({c['arm']})"
        return f"{subject} {c['op']} {c['threshold']:g} in every seed"
    f = "log10 " if c.get("log") else ""
    diff = f"mean({f}{measure}({c['a']})) - mean({f}{measure}({c['b']}))"
    if c["kind"] == "equivalent":
        return f"{diff} within +-{c['margin']:g}: the 95% Welch interval inside (-{c['margin']:g}, {c['margin']:g})"
    if c["kind"] == "noninferior":
        side, bound = ("above", f"-{c['margin']:g}") if c["direction"] == "greater" else ("below", f"{c['margin']:g}")
        return (f"{diff} with the 95% Welch interval wholly {side} {bound}: {c['a']} not worse than {c['b']} by "
                f"the margin (not reproduced when the interval lies wholly beyond it)")
    side = "> 0" if c["direction"] == "greater" else "< 0"
    margin = (f" (not reproduced when it lies below {float(c['margin']):g} on the claimed side)" if c.get("margin")
              else " (not reproduced when it lies wholly on the other side)")
    return f"{diff} {side} with the 95% Welch interval excluding 0{margin}"


def overall(outcomes: list[str], quick: bool) -> dict:
    if any(o == NOT_REPRODUCED for o in outcomes):
        verdict = NOT_REPRODUCED
    elif outcomes and all(o == REPRODUCED for o in outcomes):
        verdict = REPRODUCED
    else:
        verdict = INCONCLUSIVE
    if quick:
        return {"verdict": INCONCLUSIVE, "quick": True, "quick_outcome": verdict}
    return {"verdict": verdict, "quick": False}
