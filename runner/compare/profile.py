"""Performance profiles and the AlgoPerf score, from times to target per workload and contender.

- ratio r(w, c) = t(w, c) / min over contenders of t(w, .): 1 for the fastest (ties: all of
  them), infinite where c never reached the target (censored) or nobody did.
- profile rho_c(tau) = the fraction of workloads with r(w, c) <= tau, a step function of tau.
- score B_c = the area under rho_c from tau = 1 to tau_max, divided by tau_max - 1 (AlgoPerf's
  normalisation, so 1 means fastest on every workload). Integrated exactly: each workload
  adds (tau_max - r) / (tau_max - 1) when r <= tau_max, else nothing, divided by the workloads.
- interval: the 2.5 and 97.5 percentiles of the score over bootstrap resamples of the
  workloads (with replacement) and, inside each, of each contender's studies, whose median
  is the time again.
"""
from __future__ import annotations

import math

import numpy as np

Times = dict[str, dict[str, float]]  # workload -> contender -> time to target (inf: censored)


def ratios(times: Times) -> Times:
    out = {}
    for w, by_contender in times.items():
        best = min(by_contender.values(), default=math.inf)
        out[w] = {c: (t / best if math.isfinite(t) and math.isfinite(best) else math.inf)
                  for c, t in by_contender.items()}
    return out


def rho(ratio: Times, contender: str, tau: float) -> float:
    """The fraction of workloads on which the contender is within tau of the fastest."""
    return sum(r[contender] <= tau for r in ratio.values()) / len(ratio) if ratio else math.nan


def breakpoints(ratio: Times, tau_max: float) -> list[float]:
    """1, every finite ratio up to tau_max, and tau_max: where some profile steps."""
    inside = {r for by_contender in ratio.values() for r in by_contender.values() if 1 <= r <= tau_max}
    return sorted(inside | {1.0, float(tau_max)})


def score(ratio: Times, contender: str, tau_max: float) -> float:
    if not ratio:
        return math.nan
    return sum(max(0.0, tau_max - r[contender]) / (tau_max - 1) for r in ratio.values()) / len(ratio)


def scores(times: Times, tau_max: float) -> dict[str, float]:
    ratio = ratios(times)
    contenders = next(iter(times.values()), {})
    return {c: score(ratio, c, tau_max) for c in contenders}


def bootstrap(study_times: dict[str, dict[str, list[float]]], tau_max: float, resamples: int,
              seed: int = 0, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
    """Each contender's score interval over resamples of workloads and studies (see the top)."""
    workloads = list(study_times)
    contenders = list(study_times[workloads[0]]) if workloads else []
    if not workloads:
        return {}
    rng = np.random.default_rng(seed)
    # [W, C, S] times, inf for censored studies
    table = np.array([[study_times[w][c] for c in contenders] for w in workloads], dtype=float)
    n_w, n_c, n_s = table.shape
    picks_w = rng.integers(0, n_w, size=(resamples, n_w))
    picks_s = rng.integers(0, n_s, size=(resamples, n_w, n_c, n_s))
    drawn = np.take_along_axis(table[picks_w], picks_s, axis=3)   # [B, W, C, S]
    times = np.median(drawn, axis=3)                              # [B, W, C]
    best = times.min(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(times) & np.isfinite(best), times / best, np.inf)
    area = np.clip(tau_max - ratio, 0.0, None) / (tau_max - 1)    # [B, W, C]
    score_b = area.mean(axis=1)                                   # [B, C]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(score_b, [tail, 100 - tail], axis=0)
    return {c: (float(low[i]), float(high[i])) for i, c in enumerate(contenders)}
