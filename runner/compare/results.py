"""A finished comparison's trials -> its tables: one row per workload and contender, the
profiles, the scores with their intervals, the pairwise verdicts and the budget counted
from the run folders. Every number is labelled by what it is: steps to the validation
target (median over studies, or per rerun seed), the validation metric at the protocol's
epoch, over the rerun seeds."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from optlab.compare import measure, pairwise, profile
from optlab.compare.spec import ComparisonSpec, Workload


@dataclass
class Tables:
    targets: dict[str, dict]                  # workload -> {target, set_by}
    results: list[dict]                       # one per workload and contender
    study_times: dict[str, dict[str, list[float]]]
    times: dict[str, dict[str, float]]        # median over studies
    profile: list[dict]                       # contender, tau, rho
    scores: list[dict]                        # contender, score, interval
    pairwise: list[dict]
    reruns: dict[str, dict[str, list[float]]]  # workload -> contender -> each rerun seed's value
    budget: list[dict]
    parity: bool
    notes: list[str] = field(default_factory=list)


def of(trials: list, workload: str, contender: str) -> list:
    return [t for t in trials if t.workload == workload and t.contender == contender]


def settle_targets(spec: ComparisonSpec, trials: list) -> dict[str, dict]:
    """Each workload's target: as given, or auto from the best contender (recorded)."""
    out = {}
    for w in spec.workloads:
        if w.target is not None:
            out[w.name] = {"target": w.target, "set_by": "given"}
        else:
            value, best = measure.auto_target(spec, w, trials)
            share = f"{spec.protocol.target_share:g} of the epochs"
            out[w.name] = {"target": value,
                           "set_by": f"auto: {best}'s median study best in {share}" if best else "auto: none"}
    return out


def choices(spec: ComparisonSpec, trials: list, targets: dict) -> dict[tuple[str, str], object]:
    """(workload, contender) -> the tuning trial whose setting the reruns train (or None)."""
    return {(w.name, c.name): measure.chosen(of(trials, w.name, c.name), w, targets[w.name]["target"],
                                             spec.protocol.at)
            for w in spec.workloads for c in spec.contenders}


def tabulate(spec: ComparisonSpec, trials: list, reruns: list, targets: dict, picks: dict) -> Tables:
    names = [c.name for c in spec.contenders]
    study_times = {w.name: {c: measure.study_times(of(trials, w.name, c), w, targets[w.name]["target"],
                                                   spec.protocol.studies) for c in names}
                   for w in spec.workloads}
    times = {w: {c: measure.median_time(ts) for c, ts in by_c.items()} for w, by_c in study_times.items()}
    ratio = profile.ratios(times)
    values = rerun_values(spec, reruns)
    results = [_result(spec, w, c, of(trials, w.name, c), of(reruns, w.name, c), targets[w.name], picks[w.name, c],
                       study_times[w.name][c], ratio[w.name][c]) for w in spec.workloads for c in names]
    budget, parity = budgets(spec, trials, reruns)
    return Tables(targets, results, study_times, times, profile_rows(ratio, names, spec.protocol.tau_max),
                  score_rows(spec, study_times, ratio, names), pairwise_rows(spec, values), values, budget, parity)


def rerun_values(spec: ComparisonSpec, reruns: list) -> dict[str, dict[str, list[float]]]:
    """Each rerun seed's value of the workload's metric at the protocol's epoch."""
    return {w.name: {c.name: [measure.value_at(t.rows, w.metric, spec.protocol.at, w.maximize)
                              for t in sorted(of(reruns, w.name, c.name), key=lambda t: t.seed)]
                     for c in spec.contenders} for w in spec.workloads}


def _result(spec, w: Workload, contender: str, trials: list, reruns: list, target: dict, pick, study_times: list,
            ratio: float) -> dict:
    p = spec.protocol
    reruns = sorted(reruns, key=lambda t: t.seed)
    values = [measure.value_at(t.rows, w.metric, p.at, w.maximize) for t in reruns]
    rerun = pairwise.summary(values)
    reach = [measure.time_to_target(t.rows, w.metric, target["target"], w.maximize, t.epochs) for t in reruns]
    return {"workload": w.name, "contender": contender, "metric": w.metric, "at": p.at,
            "target": target["target"], "target_set_by": target["set_by"],
            "studies": p.studies, "trials_per_study": p.trials, "epochs": w.epochs, "tuning_runs": len(trials),
            "steps_to_target": measure.median_time(study_times), "ratio": ratio,
            "studies_reaching": sum(math.isfinite(s) for s in study_times),
            "study_steps": ";".join(_number(s) for s in study_times),
            "chosen": " ".join(pick.overrides) if pick else "", "chosen_study": pick.study if pick else None,
            "chosen_trial": pick.number if pick else None,
            **{f"rerun_{k}": v for k, v in rerun.items()},
            "rerun_seeds_reaching": sum(not r.censored for r in reach),
            "rerun_steps_median": _median([r.bound_steps for r in reach]),
            "rerun_seconds_median": _median([r.bound_seconds for r in reach]),
            "rerun_values": ";".join(_number(v) for v in values)}


def _median(values: list[float]) -> float:
    """The median of the reruns' times, lower bounds for censored seeds included as they are."""
    return float(statistics.median(values)) if values else math.nan


def _number(x: float) -> str:
    return "inf" if x == math.inf else f"{x:.6g}"


def profile_rows(ratio: dict, names: list[str], tau_max: float) -> list[dict]:
    taus = profile.breakpoints(ratio, tau_max)
    return [{"contender": c, "tau": tau, "rho": profile.rho(ratio, c, tau)} for c in names for tau in taus]


def score_rows(spec: ComparisonSpec, study_times: dict, ratio: dict, names: list[str]) -> list[dict]:
    p = spec.protocol
    interval = profile.bootstrap(study_times, p.tau_max, p.bootstrap)
    rows = [{"contender": c, "score": profile.score(ratio, c, p.tau_max), "ci_low": interval[c][0],
             "ci_high": interval[c][1], "workloads_fastest": sum(r[c] == 1 for r in ratio.values()),
             "workloads_within_tau_max": sum(r[c] <= p.tau_max for r in ratio.values()),
             "workloads": len(ratio)} for c in names]
    return sorted(rows, key=lambda r: -r["score"])


def pairwise_rows(spec: ComparisonSpec, values: dict) -> list[dict]:
    rows = []
    names = [c.name for c in spec.contenders]
    for w in spec.workloads:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                rows.append({"workload": w.name, "a": a, "b": b, "metric": w.metric, "at": spec.protocol.at,
                             **pairwise.verdict(values[w.name][a], values[w.name][b], w.margin, w.maximize)})
    return rows


def budgets(spec: ComparisonSpec, trials: list, reruns: list) -> tuple[list[dict], bool]:
    """Runs and epochs per workload and contender, from the run folders; parity: within every
    workload, each contender's tuning runs and budgeted epochs are equal (and the protocol's)."""
    rows, parity = [], True
    for w in spec.workloads:
        mine = [{"workload": w.name, "contender": c.name, **measure.budget(of(trials, w.name, c.name)),
                 "rerun_runs": len(of(reruns, w.name, c.name))} for c in spec.contenders]
        planned = spec.protocol.studies * spec.protocol.trials
        parity &= all(r["runs"] == planned and r["epochs_budgeted"] == planned * w.epochs for r in mine)
        rows += mine
    return rows, parity
