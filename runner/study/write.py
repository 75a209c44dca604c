"""A study's outputs: table.csv and runs.csv, verdict.json, study.md; the README's table."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from optlab.report.html_study import what_ran
from optlab.runs.files import write_atomic


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "nan"
    x = float(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.4g}"


def summary_table(spec, values: dict, rows: list[dict]) -> pd.DataFrame:
    """One row per measure and arm: n, mean, std, 95% interval, missing and censored seeds."""
    from optlab.study.measure import measure_range
    from optlab.study.verdict import arm_summary

    out = []
    frame = pd.DataFrame(rows)
    for name in spec.measures:
        for arm in (a.name for a in spec.arms):
            s = arm_summary(values[name][arm], bounds=measure_range(spec, name))
            column = f"{name}_censored"
            censored = int(frame.loc[frame["arm"] == arm, column].fillna(False).astype(bool).sum()) \
                if column in frame else 0
            out.append({"measure": name, "arm": arm, **s, "censored": censored})
    return pd.DataFrame(out)


def effect_text(result: dict) -> str:
    """The effect of one criterion in a few words: the difference (or ratio) with its interval."""
    e = result["effect"]
    if "seeds_passing" in e:
        return (f"{fmt(e['mean'])} [{fmt(e['ci_low'])}, {fmt(e['ci_high'])}], "
                f"{e['seeds_passing']}/{e['seeds']} seeds pass")
    if e.get("scale") == "log10":
        return (f"ratio {fmt(10 ** e['diff'])} [{fmt(10 ** e['ci_low'])}, {fmt(10 ** e['ci_high'])}]"
                if math.isfinite(e["diff"]) else "nan")
    return f"{fmt(e['diff'])} [{fmt(e['ci_low'])}, {fmt(e['ci_high'])}]"


def write_outputs(folder: Path, spec, table: pd.DataFrame, rows: list[dict], verdict: dict) -> None:
    write_atomic(folder / "table.csv", table.to_csv(index=False))
    write_atomic(folder / "runs.csv", pd.DataFrame(rows).to_csv(index=False))
    write_atomic(folder / "verdict.json", json.dumps(verdict, indent=2) + "\n")
    write_atomic(folder / "study.md", study_md(spec, table, verdict))


def study_md(spec, table: pd.DataFrame, verdict: dict) -> str:
    quick = verdict["quick"]
    lines = [f"# {spec.name}", "", f"**Claim.** {spec.claim}", "", f"**Source.** {spec.source}", "",
             f"**Verdict: {verdict['verdict']}**" + (
                 f" (quick run: shrunk epochs and seeds, never a reproduction; the criteria gave "
                 f"{verdict['quick_outcome']})" if quick else ""), "",
             "## Setup", ""]
    lines += _comparison_setup(spec.comparison) if spec.comparison is not None else _arms_setup(spec)
    lines += [f"- seeds: {verdict['seeds']}" + (f"; quick overrides: `{' '.join(verdict['quick_overrides'])}`"
                                                 if quick and verdict["quick_overrides"] else ""),
              f"- scaled down from the paper: {spec.scaled_down}", "",
              "## Criteria (written in the study file before the runs)", ""]
    for result in verdict["criteria"]:
        lines.append(f"- {result['criterion']}: **{result['outcome']}**; effect {effect_text(result)}")
    lines += ["", "## Results", "", _markdown(table), "", INTERVALS, "", f"![{spec.name}]({verdict['figure']})", ""]
    if spec.notes:
        lines += ["## Notes", "", spec.notes, ""]
    reused = f" (this invocation reused {verdict['reused']} of them)" if verdict["reused"] else ""
    lines += [(f"{what_ran(verdict)}{reused}, {verdict['compute_s']:.0f} s in all on "
               f"{verdict['machine']}; optlab {verdict['optlab']}. Rerun with "
               f"`optlab study run {spec.name}{' --quick' if quick else ''}`."), ""]
    return "\n".join(lines)


def _arms_setup(spec) -> list[str]:
    lines = [f"- base: `{' '.join(spec.base)}`"]
    return lines + [f"- arm `{a.name}`: `{' '.join(a.overrides) or '(base only)'}`" + (
        f", a sweep per seed: `{json.dumps(a.sweep, default=str)}`" if a.sweep else "") for a in spec.arms]


def _comparison_setup(comparison) -> list[str]:
    """A study built on a comparison: its workloads, contenders and protocol (the comparison's
    own write-up, with profiles and every pairwise verdict, is comparison/compare.md)."""
    p = comparison.protocol
    tuning = "each at its defaults" if p.tuning == "defaults" else f"{p.trials} trials per study, sampler {p.tuning}"
    lines = [f"- a comparison (written up in the study folder's comparison/compare.md): {p.studies} tuning "
             f"studies per workload and contender, {tuning}; each contender's best setting ({p.at}-epoch "
             f"validation metric) rerun with fresh seeds, whose values are the arms' seeds (arm "
             f"`WORKLOAD/CONTENDER`)"]
    lines += [f"- workload `{w.name}`: `{' '.join(w.base)}`, {w.epochs} epochs, {w.metric}, margin {w.margin:g}"
              for w in comparison.workloads]
    return lines + [f"- contender `{c.name}`: `{' '.join(c.overrides) or '(workload only)'}`"
                    + (f", space `{json.dumps(c.space)}`" if c.space else "")
                    + (f", sampler {c.sampler}" if c.sampler else "") for c in comparison.contenders]


INTERVALS = ("Intervals: 95% Student's t intervals of the mean (of a difference: Welch's), intersected with the "
             "values the measure can take (accuracies and fractions [0, 1]; losses, steps, norms and ratios "
             "[0, inf)); the true value lies in that range, so the intersection keeps the t interval's coverage.")


def _markdown(table: pd.DataFrame) -> str:
    cols = ["measure", "arm", "n", "mean", "ci_low", "ci_high", "missing", "censored"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)
    body = ["| " + " | ".join(fmt(r[c]) if isinstance(r[c], float) else str(r[c]) for c in cols) + " |"
            for _, r in table.iterrows()]
    return "\n".join([head, *body])


def _run_time(v: dict) -> str:
    return f"{v.get('compute_s', v['wall_time_s']):.0f} s"


def readme_table(verdicts: list[dict], names: list[str], docs: str = "docs/studies") -> str:
    """The README's table: one row per study, from its verdict.json (or 'not run yet')."""
    by_name = {v["study"]: v for v in verdicts}
    lines = ["| study | claim | verdict | effect (95% interval) | run time |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        v = by_name.get(name)
        if v is None:
            lines.append(f"| {name} | | not run in full yet | | |")
            continue
        verdict = v["verdict"] + (" (quick)" if v["quick"] else "")
        effects = "<br>".join(f"{result['outcome']}: {result['label']}: {effect_text(result)}"
                              for result in v["criteria"])
        lines.append(f"| [{name}]({docs}/{name}.md) | {v['claim']} | **{verdict}** | {effects} | {_run_time(v)} |")
    return "\n".join(lines)


MARKERS = ("<!-- studies -->", "<!-- /studies -->")


def between_markers(document: str, table: str) -> str:
    """The document with the text between the study-table markers replaced by table."""
    from optlab.errors import ConfigError

    start, end = MARKERS
    if document.count(start) != 1 or document.count(end) != 1:
        raise ConfigError(f"--readme: the file needs one line {start} and one line {end} around the table")
    head, rest = document.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{table}\n{end}{tail}"
