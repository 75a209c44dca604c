"""A comparison's outputs: results.csv, profile.csv, scores.csv, pairwise.csv, budget.csv,
compare.json and compare.md (the figure is figure.py's), each written whole or not at all."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from optlab.runs.files import write_atomic

TABLES = ("results", "profile", "scores", "pairwise", "budget")


def fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, float):
        return f"{x:.3g}" if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3) else f"{x:.4g}"
    return str(x)


def write_outputs(folder: Path, spec, tables, summary: dict) -> None:
    for name in TABLES:
        write_atomic(folder / f"{name}.csv", pd.DataFrame(getattr(tables, name)).to_csv(index=False))
    write_atomic(folder / "compare.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_atomic(folder / "compare.md", compare_md(spec, tables, summary))


def compare_md(spec, tables, summary: dict) -> str:
    p = spec.protocol
    quick = summary["quick"]
    tuning = ("each contender at its own settings (`tuning: defaults`), one run per study" if p.tuning == "defaults"
              else f"{p.trials} trials per study from the contender's space, sampler `{p.tuning}` seeded by the study")
    lines = [f"# {spec.name}" + (" (quick: a pipeline check, not a result)" if quick else ""), "",
             spec.description, "", "## Protocol", "",
             f"- {p.studies} tuning stud{'y' if p.studies == 1 else 'ies'} per workload and contender; {tuning}; "
             f"study s trains with seed s.",
             "- Time to target: steps at the end of the first epoch whose validation metric reaches the target; "
             "a study's time is its fastest trial's, a contender's the median over studies (never: censored).",
             f"- The chosen setting (best {p.at}-epoch validation metric over all studies) rerun with "
             f"{p.rerun_seeds} fresh seeds; the pairwise verdicts compare those reruns (Welch, 95%, the "
             f"workload's margin).",
             f"- Budget parity, counted from the run folders: **{'holds' if tables.parity else 'BROKEN'}**.", ""]
    lines += ["## Workloads", "", "| workload | base | metric | target | epochs | margin |", "|" + "---|" * 6]
    for w in spec.workloads:
        t = tables.targets[w.name]
        lines.append(f"| {w.name} | `{' '.join(w.base)}` | {w.metric} | {fmt(t['target'])} ({t['set_by']}) | "
                     f"{w.epochs} | {fmt(w.margin)} |")
    lines += ["", "## Score", "", _scores(tables), "", f"![performance profiles]({summary['figure']})", "",
              "## Per workload and contender", "", _results(tables, p.at), "", "![the reruns](tuned.png)", "",
              "## Pairwise verdicts", "",
              _pairwise(spec, tables), "", "## Budget (from the run folders)", "", _budget(tables), ""]
    lines.append(f"{summary['runs']} runs; {summary['wall_time_s']:.0f} s for this invocation on {summary['machine']}"
                 f" (load average {summary['load'][0]:.1f} at the start, {summary['load'][1]:.1f} at the end), "
                 f"{summary['date']}; optlab {summary['optlab']}. Rerun with `optlab compare {spec.name}"
                 f"{' --quick' if quick else ''}`.")
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _scores(tables) -> str:
    rows = [[r["contender"], f"**{r['score']:.3f}**", f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
             f"{r['workloads_fastest']}/{r['workloads']}", f"{r['workloads_within_tau_max']}/{r['workloads']}"]
            for r in tables.scores]
    return _table(["contender", "score (area under the profile, 1 = fastest everywhere)", "95% bootstrap interval",
                   "fastest on", "within tau_max on"], rows)


def _results(tables, at: str) -> str:
    rows = []
    for r in tables.results:
        steps = "never" if math.isinf(r["steps_to_target"]) else fmt(r["steps_to_target"])
        rerun = (f"{fmt(r['rerun_mean'])} [{fmt(r['rerun_ci_low'])}, {fmt(r['rerun_ci_high'])}]"
                 + (f", {r['rerun_missing']} diverged" if r["rerun_missing"] else ""))
        reached = r["rerun_seeds_reaching"]
        bound = "" if reached == r["rerun_n"] + r["rerun_missing"] else " (>=: lower bounds included)"
        rows.append([r["workload"], r["contender"], steps, f"{r['studies_reaching']}/{r['studies']}",
                     f"`{r['chosen']}`", rerun, f"{fmt(r['rerun_steps_median'])}{bound}",
                     f"{fmt(r['rerun_seconds_median'])}{bound}", f"{reached}/{r['rerun_n'] + r['rerun_missing']}"])
    return _table(["workload", "contender", "steps to target (median of studies)", "studies reaching",
                   "chosen setting", f"rerun {at}-epoch metric, mean [95% CI]", "rerun steps (median)",
                   "rerun training s (median)", "rerun seeds reaching"], rows)


def _pairwise(spec, tables) -> str:
    """One matrix per workload: row contender against column contender."""
    names = [c.name for c in spec.contenders]
    short = {"better": "better", "worse": "worse", "equivalent": "equiv.", "inconclusive": "?"}
    out = ["The row's contender against the column's: better or worse (the 95% Welch interval of the "
           "difference excludes 0), equiv. (it lies inside the margin), ? (inconclusive).", ""]
    for w in spec.workloads:
        cell = {}
        for r in (r for r in tables.pairwise if r["workload"] == w.name):
            flip = {"better": "worse", "worse": "better"}.get(r["outcome"], r["outcome"])
            cell[r["a"], r["b"]], cell[r["b"], r["a"]] = short[r["outcome"]], short[flip]
        out += [f"**{w.name}** ({w.metric} at the {spec.protocol.at} epoch, margin {fmt(w.margin)}; row vs column):",
                "", _table(["", *names], [[a, *[cell.get((a, b), "") for b in names]] for a in names]), ""]
    return "\n".join(out)


def _budget(tables) -> str:
    rows = [[r["workload"], r["contender"], r["runs"], r["epochs_budgeted"], r["epochs_trained"], r["rerun_runs"]]
            for r in tables.budget]
    return _table(["workload", "contender", "tuning runs", "epochs budgeted", "epochs trained (diverged runs stop)",
                   "rerun runs"], rows)
