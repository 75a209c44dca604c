"""The page of a sweep or a folder of runs: the report's tables and charts, linked by brushing.

Every number comes from the report package: the groups table is report.csv's table as
aggregate() made it, the points are the seeds its statistics use, the curves group_curves'.
Data are reduced where a page would grow with the runs: chart numbers keep CHART_DIGITS
significant digits (tables keep every digit), a curve longer than MAX_CURVE_POINTS epochs is
thinned to that many (the last epoch always kept), and the learning curves draw the best
max_curves groups of the current selection.
"""
from __future__ import annotations

import math
import os
from html import escape

import pandas as pd

from optlab import report
from optlab.report import html_page
from optlab.report.groups import split_of
from optlab.report.html_page import chart_layout, column_type, is_missing, rounded
from optlab.report.pbt import pbt_sections, pbt_view

MAX_CURVE_POINTS = 100  # epochs per drawn curve; longer runs are thinned evenly
MAX_CURVES = 10         # groups whose learning curves are drawn at once (the best of the selection)
MAX_KEY_CHARTS = 8      # metric-vs-key charts, as many as the report's PNGs
FEW_TRIALS = 20         # fANOVA's forest on fewer complete trials than this ranks loosely: say so
BRUSH_CHART = "parcoords"


def runs_page(collection, table: pd.DataFrame, keys: list[str], metric, stats_over: tuple[str, ...],
              paths: list[str], compared: pd.DataFrame | None = None) -> dict:
    """The page's dict (see html_page) for these runs and report.csv's `table` (and with
    --compare, compare.csv's `compared`, shown after it)."""
    from optlab.report.plots import legend_labels  # legends: 3 significant digits, as the PNGs'

    runs = collection.runs.reset_index(drop=True)
    varying = report.differing_keys(runs, collection.config_keys)
    index_of = {run_dir: i for i, run_dir in enumerate(runs["run_dir"])}
    labels = report.group_labels(runs, keys)
    group_runs = {label: [int(i) for i in members] for label, members in runs.groupby(labels, sort=False).groups.items()}
    names = [str(label) for label in table["group"]]
    groups = [{"label": name, "legend": short, "runs": group_runs.get(name, [])}
              for name, short in zip(names, legend_labels(names))]
    notes = [f"skipped {s.path}: {s.reason}" for s in collection.skipped] + list(collection.notes)
    brush_views, brush = brush_sections(collection, runs, varying, metric)
    sections = [groups_section(table, keys, metric, group_runs),
                *([compare_section(compared, paths, metric)] if compared is not None else []), *brush_views,
                runs_section(runs, varying, metric, bool(collection.sweeps)),
                *key_sections(collection, runs, table, keys, varying, metric, stats_over, index_of),
                *curve_sections(keys, metric)]
    page = {"title": f"optlab report: {', '.join(paths)}",
            "subtitle": f"{metric.label} by {', '.join(keys) or 'all runs'} "
                        f"({'higher' if metric.maximize else 'lower'} is better); statistics over runs that are "
                        f"{', '.join(stats_over)}",
            "facts": html_page.generated_facts({"runs": len(runs), "groups": len(table)}),
            "notes": notes, "runs": [_run_entry(row, varying, metric) for _, row in runs.iterrows()],
            "groups": groups, "max_curves": MAX_CURVES, "sections": sections, "brush": brush,
            "curves": curve_data(collection, keys, metric, labels, index_of, list(table["group"]))}
    for sweep in collection.sweeps:
        page["sections"] += sweep_sections(sweep, runs, metric)
    return page


def _run_entry(row: pd.Series, varying: list[str], metric) -> dict:
    """A run as the page knows it: name, folder, and the text shown when hovering it (its
    values of the keys that vary, seed, status, metric and folder; escaped, for the markup)."""
    path = os.path.abspath(str(row["run_dir"]))
    lines = [f"<b>{escape(str(row['run']))}</b>", *(escape(f"{k} = {_show(row.get(k))}") for k in varying),
             escape(f"seed {_show(row.get('seed'))}, {row['status']}, {metric.name} = {_show(row.get(metric.column))}"),
             escape(path)]
    return {"name": str(row["run"]), "path": path, "hover": "<br>".join(lines)}


def _show(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- tables

INTERVALS = {"mean": ("ci_low", "ci_high"), "test_mean": ("test_ci_low", "test_ci_high")}


def groups_section(table: pd.DataFrame, keys: list[str], metric, group_runs: dict[str, list[int]]) -> dict:
    """report.csv as a table: every column but the constant metric and epoch (in the title),
    each interval in one cell beside its mean; each row knows its runs (for brushing)."""
    shown_keys = keys if len(keys) <= 2 else ["group"]
    hidden = {"metric", "at", *(k for k in ("group", *keys) if k not in shown_keys)}
    in_intervals = {k for pair in INTERVALS.values() for k in pair}
    columns = []
    for name in table.columns:
        if name in hidden or name in in_intervals:
            continue
        columns.append({"key": name, "label": name, "type": column_type(table[name])})
        if name in INTERVALS and all(k in table for k in INTERVALS[name]):
            columns.append({"key": f"{name}_ci", "label": "95% CI", "type": "interval", "keys": list(INTERVALS[name])})
    rows = [{"cells": _cells(row), "runs": group_runs.get(row["group"], [])} for _, row in table.iterrows()]
    return {"kind": "table", "id": "groups", "title": f"Groups: {metric.label}",
            "caption": "report.csv, one row per group (n = distinct seeds the statistics use; runs = run folders); "
                       "rank 1 is the best mean. Brushing shows the groups holding a selected run.",
            "columns": columns, "rows": rows}


def _cells(row: pd.Series) -> dict:
    return {str(k): (None if is_missing(v) else v) for k, v in row.items()}


def compare_section(compared: pd.DataFrame, paths: list[str], metric) -> dict:
    """compare.csv: per group, A's and B's n, mean and interval, and A - B with Welch's interval."""
    columns = [{"key": c, "label": c, "type": column_type(compared[c])} for c in compared.columns]
    return {"kind": "table", "id": "compare", "title": f"A - B: {metric.label}",
            "caption": f"compare.csv; A = {paths[0]}, B = {paths[1]}; diff = mean(A) - mean(B) with Welch's 95% "
                       "interval and two-sided p", "columns": columns,
            "rows": [{"cells": _cells(row)} for _, row in compared.iterrows()]}


def runs_section(runs: pd.DataFrame, varying: list[str], metric, in_sweeps: bool) -> dict:
    """One row per run folder: the keys that vary, seed, status, the metric, the folder."""
    names = ["run", *(["sweep", "trial"] if in_sweeps else []), *varying, "seed", "status", metric.column,
             *([metric.test_column] if metric.test_column else [])]
    columns = [{"key": n, "label": n, "type": column_type(runs[n]) if n in runs else "text"} for n in names]
    columns.append({"key": "path", "label": "run folder", "type": "longtext"})
    rows = []
    for i, row in runs.iterrows():
        cells = {n: (None if n not in row or is_missing(row[n]) else row[n]) for n in names}
        rows.append({"cells": {**cells, "path": os.path.abspath(str(row["run_dir"]))}, "runs": [int(i)]})
    return {"kind": "table", "id": "runs", "title": "Runs",
            "caption": f"every run folder read ({metric.column}: {metric.label}); diverged, pruned and failed runs "
                       "are listed, never dropped", "columns": columns, "rows": rows}


# ---------------------------------------------------------------- parallel coordinates

def brush_sections(collection, runs: pd.DataFrame, varying: list[str], metric) -> tuple[list[dict], dict | None]:
    """Parallel coordinates over the keys that vary and the metric (page.js draws them as SVG:
    no WebGL), and the page's `brush`: every run's value on each axis, so that brushing an
    axis selects exactly the runs inside its range."""
    dims = [_dimension(runs, key, report.log_scaled(collection.sweeps, key)) for key in varying]
    dims = [d for d in dims if d is not None]
    if not dims:
        return [], None
    values = pd.to_numeric(runs[metric.column], errors="coerce")
    dims.append({"label": metric.label, "values": [None if math.isnan(v) else float(v) for v in values]})
    drawn = sum(all(d["values"][i] is not None for d in dims) for i in range(len(runs)))
    left_out = len(runs) - drawn
    caption = ("One line per run, coloured by the metric. Drag along an axis to select a range (on several axes: "
               "a run must be inside all of them); click an axis to drop its range. Hover a line for its run."
               + (f" {left_out} run(s) without a value on every axis (diverged, failed, or a key their branch "
                  "lacks) are not drawn; the tables filter them by the axes they have." if left_out else ""))
    brush = {"chart": BRUSH_CHART, "dims": dims, "maximize": metric.maximize}
    return [{"kind": "parcoords", "id": BRUSH_CHART, "title": "Parallel coordinates", "caption": caption}], brush


def _dimension(runs: pd.DataFrame, key: str, sampled_log: bool | None) -> dict | None:
    from optlab.report.plots import wants_log

    numeric = pd.to_numeric(runs[key], errors="coerce")
    present = runs[key].notna()
    if numeric[present].notna().all() and key in report.numeric_keys(runs, [key]):
        log = wants_log(numeric, sampled_log)
        if log and (numeric.dropna() > 0).all():
            return _log_dimension(key, numeric)
        return {"label": key, "values": [None if math.isnan(v) else float(v) for v in numeric]}
    names = sorted(runs.loc[present, key].astype(str).unique())
    if len(names) < 2:
        return None
    code = {name: i for i, name in enumerate(names)}
    return {"label": key, "values": [code[str(v)] if ok else None for v, ok in zip(runs[key], present)],
            "tickvals": list(range(len(names))), "ticktext": names}


def _log_dimension(key: str, values: pd.Series) -> dict:
    logs = values.map(lambda v: math.log10(v) if v > 0 else math.nan)
    low, high = math.floor(logs.min()), math.ceil(logs.max())
    return {"label": f"{key} (log)", "values": [None if math.isnan(v) else v for v in logs], "range": [low, high],
            "tickvals": list(range(low, high + 1)), "ticktext": [f"1e{d}" for d in range(low, high + 1)]}


# ---------------------------------------------------------------- the metric against each key

def seed_points(collection, keys: list[str], metric, stats_over: tuple[str, ...]) -> pd.DataFrame:
    """One row per replicate the statistics use (duplicates merged, as aggregate() does)."""
    runs = collection.runs.assign(replicate=report.replicate_ids(collection.runs, collection.config_keys, keys))
    used = runs[runs["status"].isin(stats_over) & runs[metric.column].notna()]
    return report.merge_duplicates(used, [metric.column])


def key_sections(collection, runs, table, keys, varying, metric, stats_over, index_of) -> list[dict]:
    points = seed_points(collection, keys, metric, stats_over)
    numeric = report.numeric_keys(runs, varying)[:MAX_KEY_CHARTS]
    charts = [key_chart(points, runs, table, keys, key, [k for k in keys if k != key and k not in numeric],
                        metric, report.log_scaled(collection.sweeps, key), index_of) for key in numeric]
    return [{"kind": "chart", "id": f"vs-{i}", "role": "highlight", "title": f"{metric.name} against {key}",
             "caption": chart["caption"], "figure": chart["figure"], "toggles": []} for i, (key, chart)
            in enumerate(zip(numeric, charts))]


def key_chart(points, runs, table, keys, key, hue_keys, metric, sampled_log, index_of) -> dict:
    """Each seed's value against `key` (colour: the other grouping keys), and each group's
    mean and 95% interval from report.csv where the group holds one value of the key."""
    from optlab.report.plots import wants_log

    x = pd.to_numeric(points[key], errors="coerce")
    hue = report.group_labels(points, hue_keys) if hue_keys else pd.Series("runs", index=points.index)
    traces = []
    for name, part in points.assign(_x=x, _hue=hue).dropna(subset=["_x"]).groupby("_hue", sort=True):
        traces.append({"type": "scatter", "mode": "markers", "name": f"{name} (n={len(part)})", "meta": "runs",
                       "x": rounded(part["_x"], 8), "y": rounded(part[metric.column]),
                       "customdata": [index_of[d] for d in part["run_dir"]], "marker": {"size": 7, "opacity": 0.75},
                       "selected": {"marker": {"opacity": 1}}, "unselected": {"marker": {"opacity": 0.12}},
                       "hovertemplate": "%{text}<extra></extra>"})
    traces += _group_means(runs, table, keys, key)
    log = wants_log(x, sampled_log)
    log_axis = {"type": "log", "dtick": 1, "exponentformat": "power"}
    layout = chart_layout(f"{metric.label} against {key}", key, metric.label,
                     xaxis=log_axis if log and bool((x.dropna() > 0).all()) else {"type": "linear"})
    colour = f"; colour: {', '.join(hue_keys)}" if hue_keys else ""
    return {"figure": {"data": traces, "layout": layout},
            "caption": f"one point per config and seed the statistics use (n = {int(x.notna().sum())}){colour}; "
                       "black: a group's mean with its 95% t-interval (report.csv), where the group holds one "
                       f"value of {key} and more than one seed"}


def _group_means(runs, table, keys, key) -> list[dict]:
    labels = report.group_labels(runs, keys)
    per_group = pd.to_numeric(runs[key], errors="coerce").groupby(labels).agg(["min", "max"])
    rows = table[table["group"].isin(per_group.index) & (table["n"] > 1)]
    rows = rows[[per_group.at[g, "min"] == per_group.at[g, "max"] for g in rows["group"]]]
    if rows.empty:
        return []
    x = [per_group.at[g, "min"] for g in rows["group"]]
    return [{"type": "scatter", "mode": "markers", "name": "group mean, 95% CI", "x": rounded(x, 8),
             "y": rounded(rows["mean"]), "text": list(rows["group"]),
             "error_y": {"type": "data", "symmetric": False, "array": rounded(rows["ci_high"] - rows["mean"]),
                         "arrayminus": rounded(rows["mean"] - rows["ci_low"]), "color": "#222"},
             "marker": {"symbol": "diamond", "color": "#222", "size": 8},
             "hovertemplate": "%{text}<br>mean %{y}<extra></extra>"}]


# ---------------------------------------------------------------- learning curves

def curve_columns(metric) -> list[str]:
    return list(dict.fromkeys(c for c in (metric.curve, "train_loss") if c))


def curve_sections(keys: list[str], metric) -> list[dict]:
    sections = []
    for column in curve_columns(metric):
        split = split_of(column)
        sections.append({"kind": "curves", "id": f"curves-{column}", "column": column,
                         "title": f"Learning curves: {column}" + (f" ({split})" if split else ""),
                         "caption": f"mean over each group's seeds per epoch, band: the mean's 95% t-interval "
                                    f"(none for one seed); by {', '.join(keys) or 'all runs'}",
                         "toggles": ["seeds", *(["log"] if "loss" in column else [])],
                         "layout": {**chart_layout(f"{column} per epoch", "epochs trained", column), "height": 520,
                                    "legend": {"orientation": "h", "yanchor": "top", "y": -0.16, "font": {"size": 11}}}})
    return sections


def curve_data(collection, keys, metric, labels, index_of, order: list[str]) -> dict:
    """Per curve column: every group's mean and interval per epoch, and every run's line
    (thinned to MAX_CURVE_POINTS epochs)."""
    group_index = {label: i for i, label in enumerate(order)}
    data = {}
    for column in curve_columns(metric):
        table = report.group_curves(collection, keys, column)
        per_group = [{"group": group_index[g], "epoch": _thin(part["epoch"] + 1), "mean": _thin(part["mean"], True),
                      "low": _thin(part["ci_low"], True), "high": _thin(part["ci_high"], True),
                      "n": _thin(part["n"].astype(int))}
                     for g, part in table.groupby("group", sort=False) if g in group_index]
        curves = collection.curves
        per_run = [{"run": index_of[d], "epoch": _thin(part["epoch"] + 1), "value": _thin(part[column], True)}
                   for d, part in curves.groupby("run_dir", sort=False) if column in part and d in index_of]
        data[column] = {"groups": per_group, "runs": per_run}
    return data


def _thin(values: pd.Series, chart_number: bool = False) -> list:
    values = list(values)
    if len(values) > MAX_CURVE_POINTS:
        step = (len(values) - 1) / (MAX_CURVE_POINTS - 1)
        values = [values[round(i * step)] for i in range(MAX_CURVE_POINTS)]
    return rounded(values) if chart_number else [int(v) for v in values]


# ---------------------------------------------------------------- sweeps

def sweep_sections(sweep, runs: pd.DataFrame, metric) -> list[dict]:
    """A sweep's own views: best so far over trials, importances, the values pruning judged.
    A sweep kind with views of its own (a population-based sweep's schedules along the best
    lineage) adds its builder here."""
    maximize = report.sweep_direction(sweep, metric.maximize)
    name = sweep.meta.get("metric") or "value"
    trial_runs = _trial_runs(sweep, runs)
    sections = [_best_so_far_section(sweep, name, maximize, trial_runs)]
    sections += _importance_sections(sweep, name)
    sections += _intermediate_sections(sweep, name)
    sections += pbt_sections(pbt_view(sweep))
    return [s for s in sections if s]


def _trial_runs(sweep, runs: pd.DataFrame) -> dict[int, int]:
    """Trial number -> the index of its first run on the page."""
    mine = runs[(runs["sweep"] == sweep.study) & runs["trial"].notna()]
    return {int(t): int(i) for i, t in mine["trial"].items() if not math.isnan(t)}


def _best_so_far_section(sweep, name: str, maximize: bool, trial_runs: dict[int, int]) -> dict | None:
    history = report.best_so_far(sweep.trials, maximize)
    if history.empty:
        return None
    have = [n in trial_runs for n in history["number"]]
    points = history[have]
    traces = [{"type": "scatter", "mode": "markers", "name": "trial value", "meta": "runs",
               "x": list(points["number"].astype(int)), "y": rounded(points["value"]),
               "customdata": [trial_runs[n] for n in points["number"]], "hovertemplate": "%{text}<extra></extra>",
               "marker": {"size": 6, "opacity": 0.7}, "selected": {"marker": {"opacity": 1}},
               "unselected": {"marker": {"opacity": 0.12}}},
              {"type": "scatter", "mode": "lines", "name": "best so far", "line": {"shape": "hv", "color": "#222"},
               "x": list(history["number"].astype(int)), "y": rounded(history["best"])}]
    return {"kind": "chart", "id": f"best-{sweep.study}", "role": "highlight",
            "title": f"Sweep {sweep.study}: best so far",
            "caption": f"each completed trial's objective ({name}, as the sweep scored it: the mean over the trial's "
                       f"seeds) and the best so far (n = {len(history)} trials)",
            "figure": {"data": traces, "layout": chart_layout(f"{sweep.study}: {name} per trial", "trial", name)}}


def _importance_sections(sweep, name: str) -> list[dict]:
    importances, _ = report.param_importances(sweep)
    if importances is None:
        return []
    trials = int(importances["trials"].max())
    traces = []
    for branch, part in importances.groupby("branch", sort=False):
        part = part.sort_values("importance")
        traces.append({"type": "bar", "orientation": "h", "name": f"{branch} ({int(part['trials'].iloc[0])} trials)",
                       "x": rounded(part["importance"]), "y": [f"{p} [{branch}]" for p in part["param"]]})
    warning = (f" Only {trials} complete trials: with fewer than {FEW_TRIALS}, fANOVA's forest ranks loosely; "
               "treat the order as rough." if trials < FEW_TRIALS else "")
    layout = chart_layout(f"{sweep.study}: parameter importances for {name}", "importance (each branch sums to 1)", "")
    layout["height"] = max(260, 60 + 28 * len(importances))
    layout["margin"]["l"] = 220
    return [{"kind": "chart", "id": f"importances-{sweep.study}", "title": f"Sweep {sweep.study}: parameter importances",
             "caption": "Optuna's fANOVA (seeded), per branch of a conditional space." + warning,
             "figure": {"data": traces, "layout": layout}}]


def _intermediate_sections(sweep, name: str) -> list[dict]:
    values, _ = report.intermediate_values(sweep)
    if values is None:
        return []
    traces = []
    for state, part in values.groupby("state", sort=True):
        x, y, text = [], [], []
        for number, trial in part.groupby("number", sort=True):  # one line per trial, None between them
            x += [int(s) + 1 for s in trial["step"]] + [None]
            y += rounded(trial["value"]) + [None]
            text += [f"trial {number} ({state.lower()})"] * len(trial) + [""]
        pruned = state == "PRUNED"  # its points mark where the pruner stopped it (one value: a point alone)
        traces.append({"type": "scatter", "mode": "lines+markers" if pruned else "lines",
                       "name": f"{state.lower()} ({part['number'].nunique()})", "x": x, "y": y, "text": text,
                       "line": {"width": 1}, "marker": {"size": 4}, "opacity": 0.5,
                       "hovertemplate": "%{text}<br>epoch %{x}: %{y}<extra></extra>"})
    return [{"kind": "chart", "id": f"intermediate-{sweep.study}", "title": f"Sweep {sweep.study}: intermediate values",
             "caption": f"each trial's {name} as reported to the pruner after every epoch (the values the pruner "
                        "judged), by the trial's final state",
             "figure": {"data": traces, "layout": chart_layout(f"{sweep.study}: {name} reported per epoch", "epochs trained",
                                                         name)}}]
