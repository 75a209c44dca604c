"""The page of one study or of every study: the claim, each criterion with its numbers and
verdict, the measures' table, and the study's figure as interactive charts.

Everything is read from the study folder as `optlab study run` wrote it (verdict.json,
table.csv, runs.csv, the runs' metrics.csv and layers.csv): nothing is measured or judged
again here. The figure's kind and keys come from the study file (its `figure` mapping).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from optlab.report import html_page
from optlab.report.html_page import COLOURS, chart_layout, column_type, is_missing, rounded


def what_ran(verdict: dict) -> str:
    """'10 runs', '20 sweeps (320 trials)': what the study counted (verdicts before sweeps
    were counted apart say only runs)."""
    parts = [f"{verdict['runs']} runs"] if verdict["runs"] or not verdict.get("sweeps") else []
    if verdict.get("sweeps"):
        parts.append(f"{verdict['sweeps']} sweeps ({verdict['trials']} trials)")
    return " and ".join(parts)


def study_page(studies: list[tuple[Path, dict]], title: str, overview: bool = False) -> dict:
    """The page's dict for these (study folder, figure mapping) pairs, one block of sections
    per study, after a table of them all when `overview`."""
    verdicts = [(folder, figure, json.loads((folder / "verdict.json").read_text())) for folder, figure in studies]
    sections = [overview_section(verdicts)] if overview else []
    for folder, figure, verdict in verdicts:
        sections += study_sections(folder, figure, verdict)
    machines = sorted({v.get("machine", "") for _, _, v in verdicts} - {""})
    return {"title": title, "subtitle": "claims from the lecture material, each tested by its study's runs",
            "facts": html_page.generated_facts({"studies": len(verdicts), "machine": "; ".join(machines)}),
            "notes": [], "runs": [], "groups": [], "sections": sections}


def overview_section(verdicts: list) -> dict:
    rows = [{"cells": {"study": v["study"], "verdict": v["verdict"] + (" (quick)" if v.get("quick") else ""),
                       "claim": v["claim"], "ran": what_ran(v), "compute_s": v.get("compute_s")}}
            for _, _, v in verdicts]
    columns = [{"key": "study", "label": "study", "type": "text"}, {"key": "verdict", "label": "verdict", "type": "text"},
               {"key": "ran", "label": "trained", "type": "text"},
               {"key": "compute_s", "label": "compute (s)", "type": "number"},
               {"key": "claim", "label": "claim", "type": "longtext"}]
    return {"kind": "table", "id": "studies", "title": "Studies", "columns": columns, "rows": rows,
            "caption": "every study with a verdict.json; each has its own sections below"}


def study_sections(folder: Path, figure: dict, verdict: dict) -> list[dict]:
    name = verdict["study"]
    table = pd.read_csv(folder / "table.csv")
    runs = pd.read_csv(folder / "runs.csv") if (folder / "runs.csv").is_file() else pd.DataFrame()
    sections = [claim_section(verdict), criteria_section(verdict),
                {"kind": "table", "id": f"measures-{name}", "title": f"{name}: measures per arm",
                 "caption": "table.csv: n seeds, mean, 95% t-interval, seeds with no value, censored seeds",
                 "columns": [{"key": c, "label": c, "type": column_type(table[c])} for c in table.columns],
                 "rows": [{"cells": {k: (None if is_missing(v) else v) for k, v in row.items()}}
                          for _, row in table.iterrows()]}]
    sections += [measure_chart(name, measure, verdict, runs) for measure in verdict["values"]]
    sections += figure_charts(folder, name, figure, runs)
    return sections


def claim_section(verdict: dict) -> dict:
    quick = (f"quick run: shrunk epochs and seeds, never a reproduction (the criteria gave "
             f"{verdict.get('quick_outcome')})") if verdict.get("quick") else ""
    items = [["claim", verdict["claim"]], ["source", verdict["source"]],
             ["scaled down", verdict.get("scaled_down", "")], ["seeds per arm", str(verdict.get("seeds", ""))],
             ["trained", f"{what_ran(verdict)} ({verdict.get('reused', 0)} runs reused by the last invocation)"],
             ["compute", f"{verdict.get('compute_s', verdict.get('wall_time_s', 0)):.0f} s on {verdict.get('machine')}; "
                         f"optlab {verdict.get('optlab')}"], *([["quick", quick]] if quick else [])]
    return {"kind": "facts", "id": f"claim-{verdict['study']}", "title": f"{verdict['study']}: {verdict['verdict']}",
            "badge": verdict["verdict"], "items": items}


def criteria_section(verdict: dict) -> dict:
    """Each criterion (as written before the runs), its outcome, and its effect's numbers: the
    difference (log10 of the ratio for log criteria) or the arm's mean, with the 95% interval."""
    rows = []
    for result in verdict["criteria"]:
        effect = result["effect"]
        estimate = effect.get("diff", effect.get("mean"))
        rows.append({"cells": {"criterion": result["criterion"], "outcome": result["outcome"],
                               "estimate": estimate, "ci_low": effect.get("ci_low"), "ci_high": effect.get("ci_high"),
                               "scale": effect.get("scale", ""), "p_value": effect.get("p_value"),
                               "seeds_passing": (f"{effect['seeds_passing']}/{effect['seeds']}"
                                                 if "seeds_passing" in effect else "")}})
    columns = [{"key": "outcome", "label": "outcome", "type": "text"},
               {"key": "estimate", "label": "difference or mean", "type": "number"},
               {"key": "ci", "label": "95% interval", "type": "interval", "keys": ["ci_low", "ci_high"]},
               {"key": "scale", "label": "scale", "type": "text"}, {"key": "p_value", "label": "p", "type": "number"},
               {"key": "seeds_passing", "label": "seeds passing", "type": "text"},
               {"key": "criterion", "label": "criterion", "type": "longtext"}]
    return {"kind": "table", "id": f"criteria-{verdict['study']}", "title": f"{verdict['study']}: criteria",
            "caption": "written in the study file before the runs; a log10 scale compares ratios (10^difference)",
            "columns": columns, "rows": rows}


def _run_paths(folder: Path, runs: pd.DataFrame) -> dict[tuple[str, int], list[Path]]:
    """(arm, seed) -> the run folders (runs.csv's paths, found in the study folder if moved)."""
    found: dict[tuple[str, int], list[Path]] = {}
    for row in runs.itertuples():
        path = Path(str(row.path))
        if not path.exists() and (folder / "runs" / path.name).exists():
            path = folder / "runs" / path.name
        found.setdefault((str(row.arm), int(row.seed)), []).append(path)
    return found


def measure_chart(name: str, measure: str, verdict: dict, runs: pd.DataFrame) -> dict:
    """Per arm: the mean and its 95% interval (verdict.json's arms), and every seed's value."""
    arms = list(verdict["values"][measure])
    summaries = verdict.get("arms", {}).get(measure, {})
    traces = []
    for i, arm in enumerate(arms):
        per_seed = verdict["values"][measure][arm]
        summary = summaries.get(arm, {})
        mean, low, high = (summary.get(k) for k in ("mean", "ci_low", "ci_high"))
        traces.append({"type": "bar", "x": [arm], "y": rounded([mean]), "name": f"{arm} (n={summary.get('n', 0)})",
                       "marker": {"color": COLOURS[i % len(COLOURS)], "opacity": 0.45},
                       "error_y": {"type": "data", "symmetric": False,
                                   "array": rounded([high - mean if None not in (high, mean) else None]),
                                   "arrayminus": rounded([mean - low if None not in (low, mean) else None])},
                       "hovertemplate": f"{arm}: mean %{{y}}<extra></extra>"})
        seeds = sorted(per_seed, key=int)
        paths = _seed_paths(runs, arm)
        traces.append({"type": "scatter", "mode": "markers", "x": [arm] * len(seeds),
                       "y": rounded(per_seed[s] for s in seeds), "showlegend": False,
                       "marker": {"color": "#111", "size": 7},
                       "text": [f"seed {s}<br>{paths.get(int(s), '')}" for s in seeds],
                       "hovertemplate": "%{text}<br>%{y}<extra></extra>"})
    layout = chart_layout(f"{name}: {measure} per arm", "arm", f"{measure} (bar: mean, 95% CI; dots: seeds)")
    layout["barmode"] = "overlay"
    return {"kind": "chart", "id": f"measure-{name}-{measure}", "title": f"{name}: {measure}",
            "caption": "bar: the arm's mean with its 95% t-interval (verdict.json); dots: each seed's value "
                       "(hover: the run folder)", "figure": {"data": traces, "layout": layout}}


def _seed_paths(runs: pd.DataFrame, arm: str) -> dict[int, str]:
    if runs.empty:
        return {}
    mine = runs[runs["arm"].astype(str) == arm]
    return {int(seed): str(path) for seed, path in zip(mine["seed"], mine["path"])}


def figure_charts(folder: Path, name: str, figure: dict, runs: pd.DataFrame) -> list[dict]:
    """The study's figure as a chart: curves per run, or a layer statistic against depth (a
    'bars' figure is the measure charts above)."""
    if runs.empty or figure.get("kind") not in ("curves", "layers"):
        return []
    paths = _run_paths(folder, runs)
    traces = _curve_traces(paths, figure) if figure["kind"] == "curves" else _layer_traces(paths, figure)
    if not traces:
        return []
    if figure["kind"] == "curves":
        x_key, column = figure.get("x", "epoch"), figure.get("column", "val_acc")
        layout = chart_layout(figure.get("title") or name, x_key, f"{column} (one line per seed)")
    else:
        stat, epoch = figure.get("stat", "act_std"), int(figure.get("epoch", -1))
        when = "initialization" if epoch < 0 else f"epoch {epoch}"
        layout = chart_layout(figure.get("title") or name, "hidden layer (depth)", f"{stat} at {when} (one line per seed)",
                         xaxis={"dtick": 1})
    if figure.get("log"):
        layout["yaxis"]["type"] = "log"
    return [{"kind": "chart", "id": f"figure-{name}", "title": f"{name}: the study's figure",
             "caption": "the data of the study's PNG figure, one line per run; click a legend entry to hide an arm",
             "figure": {"data": traces, "layout": layout}, "toggles": ["log"] if not figure.get("log") else []}]


def _curve_traces(paths: dict, figure: dict) -> list[dict]:
    from optlab.report.load import read_metrics

    x_key, column = figure.get("x", "epoch"), figure.get("column", "val_acc")
    traces, arms = [], list(dict.fromkeys(arm for arm, _ in paths))
    for (arm, seed), folders in paths.items():
        for folder in folders:
            table, _ = read_metrics(folder / "metrics.csv")
            if x_key not in table or column not in table:
                continue
            traces.append(_line(arm, arms.index(arm), seed, rounded(table[x_key], 8), rounded(table[column]), folder,
                                legend=not any(t["name"] == arm for t in traces)))
    return traces


def _layer_traces(paths: dict, figure: dict) -> list[dict]:
    from optlab.report.layer_plots import load_layers

    stat, epoch = figure.get("stat", "act_std"), int(figure.get("epoch", -1))
    traces, arms = [], list(dict.fromkeys(arm for arm, _ in paths))
    for (arm, seed), folders in paths.items():
        for folder in folders:
            if not (folder / "layers.csv").is_file():
                continue
            rows = load_layers(folder)
            rows = rows[rows["epoch"] == epoch].sort_values("layer")
            traces.append(_line(arm, arms.index(arm), seed, list(rows["layer"].astype(int) + 1), rounded(rows[stat]),
                                folder, legend=not any(t["name"] == arm for t in traces)))
    return traces


def _line(arm: str, index: int, seed: int, x: list, y: list, folder: Path, legend: bool) -> dict:
    return {"type": "scatter", "mode": "lines+markers", "x": x, "y": y, "name": arm, "legendgroup": arm,
            "showlegend": legend, "marker": {"size": 4}, "line": {"width": 1.2, "color": COLOURS[index % 10]},
            "text": [f"{arm}, seed {seed}<br>{folder}"] * len(x), "hovertemplate": "%{text}<br>%{x}: %{y}<extra></extra>"}
