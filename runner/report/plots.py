"""Report pictures with matplotlib, headless: figures are built on matplotlib.figure.Figure
(Agg canvas, no pyplot state), returned for inspection, and saved by save().

Every figure has labelled axes, a title that says what is drawn (the metric, its split and
epoch, the grouping, how many runs) and a legend outside the axes, so it never covers data.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

MAX_CURVES = 10  # more groups than this: the best ranked ones are drawn, the title says so


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight" takes in the legend beside the axes
    return Path(path)


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(7.5, 4.5))
    return fig, fig.add_subplot()


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the axes, top-aligned."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def learning_curves(table: pd.DataFrame, column: str, order: list[str] | None = None, grouping: str = "") -> Figure:
    """Mean of `column` per group vs epoch, with a min-max band over the group's runs.
    `table` comes from report.group_curves; `order` lists groups best first; `grouping`
    names the grouping keys for the title."""
    fig, ax = _figure()
    groups = [g for g in (order or sorted(table["group"].unique())) if g in set(table["group"])]
    shown = groups[:MAX_CURVES]
    runs_drawn = 0
    for group in shown:
        part = table[table["group"] == group].sort_values("epoch")
        epochs = part["epoch"] + 1  # epochs trained
        runs = int(part["n"].max())
        runs_drawn += runs
        line, = ax.plot(epochs, part["mean"], marker="o", markersize=3, label=f"{group} (n={runs})")
        ax.fill_between(epochs, part["min"], part["max"], color=line.get_color(), alpha=0.2, linewidth=0)
    more = f", best {len(shown)} of {len(groups)} groups" if len(groups) > len(shown) else ""
    split = _split(column)
    ax.set(xlabel="epoch", ylabel=column,
           title=f"{column}{f' ({split})' if split else ''} per epoch{f' by {grouping}' if grouping else ''}: "
                 f"mean over runs, band = min-max\n(n = {runs_drawn} runs, a config and seed counted once{more})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig


def _split(column: str) -> str:
    from optlab.report.groups import split_of

    return split_of(column)


def spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    """Log axis when every value is positive and max/min covers `decades` powers of ten."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(values)) and values.min() > 0 and math.log10(values.max() / values.min()) >= decades


def metric_vs_key(runs: pd.DataFrame, key: str, value_column: str, metric_name: str,
                  hue: pd.Series | None = None, hue_name: str = "", log: bool | None = None) -> Figure:
    """Each run's metric against a numeric config key, one colour per group (`hue`, named
    `hue_name`, e.g. the optimizer), and per group a line through the mean over seeds where
    a key value repeats. `runs` holds one row per seed the statistics use. Log x axis when
    `log` (the key was sampled on a log scale), or when it is None and the key spans decades."""
    fig, ax = _figure()
    data = pd.DataFrame({"x": pd.to_numeric(runs[key], errors="coerce"),
                         "y": pd.to_numeric(runs[value_column], errors="coerce"),
                         "hue": "runs" if hue is None else hue.reindex(runs.index).astype(str)}).dropna()
    for name, part in data.groupby("hue", sort=True):
        dots = ax.scatter(part["x"], part["y"], s=18, alpha=0.7, label=f"{name} (n={len(part)})")
        means = part.groupby("x")["y"].mean()
        if len(means) < len(part):  # repeated values (seeds): their mean is worth a line
            ax.plot(means.index, means.values, color=dots.get_facecolor()[0], linewidth=1, alpha=0.8)
    if spans_decades(data["x"]) if log is None else (log and bool((data["x"] > 0).all())):
        ax.set_xscale("log")
    colour = f", colour = {hue_name}" if hue_name else ""
    ax.set(xlabel=key, ylabel=metric_name, title=f"{metric_name} vs {key}\n"
           f"(one point per config and seed{colour}, lines = mean over seeds; n = {len(data)})")
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig


def best_so_far(table: pd.DataFrame, metric_name: str, study: str) -> Figure:
    """A sweep's completed trial values and the best value so far, vs trial number.
    `table` comes from report.best_so_far."""
    fig, ax = _figure()
    ax.scatter(table["number"], table["value"], s=16, alpha=0.6, label="trial value")
    ax.step(table["number"], table["best"], where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=metric_name,
           title=f"{study}: each completed trial's objective ({metric_name}, as the sweep scored it)\n"
                 f"and the best so far (n = {len(table)} trials)")
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig


def importances(table: pd.DataFrame, study: str, metric_name: str = "the objective") -> Figure:
    """Parameter importances as horizontal bars, one colour per branch of the space (from
    report.branch_importances: branch, param, importance, trials), most important on top
    within each branch."""
    branches = list(dict.fromkeys(table["branch"]))
    fig = Figure(figsize=(7.5, max(3.0, 0.35 * len(table) + 1.5)))
    ax = fig.add_subplot()
    position, ticks = 0, []
    for branch in reversed(branches):  # the first branch (all trials) ends up on top
        part = table[table["branch"] == branch].sort_values("importance")
        rows = list(range(position, position + len(part)))
        ax.barh(rows, list(part["importance"]), label=f"{branch} ({int(part['trials'].iloc[0])} trials)")
        ticks += list(zip(rows, part["param"]))
        position += len(part) + 1  # a gap between branches
    ax.set_yticks([row for row, _ in ticks], [name for _, name in ticks])
    per_branch = ", each branch sums to 1" if len(branches) > 1 else ", sums to 1"
    ax.set(xlabel=f"importance (Optuna fANOVA{per_branch})", ylabel="parameter",
           title=f"{study}: parameter importances for {metric_name}"
                 + ("\nper branch of the conditional space" if len(branches) > 1 else ""))
    handles, names = ax.get_legend_handles_labels()
    legend_outside(ax, handles=handles[::-1], labels=names[::-1])  # top to bottom, as the bars
    return fig
