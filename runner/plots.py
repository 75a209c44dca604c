"""Report pictures with matplotlib, headless: figures are built on matplotlib.figure.Figure
(Agg canvas, no pyplot state), returned for inspection, and saved by save().

Every figure has labelled axes, a title and a legend.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

MAX_CURVES = 10  # more groups than this: the best ranked ones are drawn, the title says so


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(7.5, 4.5))
    return fig, fig.add_subplot()


def learning_curves(table: pd.DataFrame, column: str, order: list[str] | None = None) -> Figure:
    """Mean of `column` per group vs epoch, with a min-max band over the group's runs.
    `table` comes from report.group_curves; `order` lists groups best first."""
    fig, ax = _figure()
    groups = [g for g in (order or sorted(table["group"].unique())) if g in set(table["group"])]
    shown = groups[:MAX_CURVES]
    for group in shown:
        part = table[table["group"] == group].sort_values("epoch")
        epochs = part["epoch"] + 1  # epochs trained
        runs = int(part["n"].max())
        line, = ax.plot(epochs, part["mean"], marker="o", markersize=3, label=f"{group} (n={runs})")
        ax.fill_between(epochs, part["min"], part["max"], color=line.get_color(), alpha=0.2, linewidth=0)
    more = f" (best {len(shown)} of {len(groups)} groups)" if len(groups) > len(shown) else ""
    ax.set(xlabel="epoch", ylabel=column, title=f"{column}: mean over runs, band = min-max{more}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return fig


def spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    """Log axis when every value is positive and max/min covers `decades` powers of ten."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(values)) and values.min() > 0 and math.log10(values.max() / values.min()) >= decades


def metric_vs_key(runs: pd.DataFrame, key: str, value_column: str, metric_name: str,
                  hue: pd.Series | None = None) -> Figure:
    """Each run's metric against a numeric config key, one colour per group (`hue`, e.g.
    the optimizer), and per group a line through the mean over seeds where a key value
    repeats. `runs` holds the runs the statistics use; log x axis when the key spans decades."""
    fig, ax = _figure()
    data = pd.DataFrame({"x": pd.to_numeric(runs[key], errors="coerce"),
                         "y": pd.to_numeric(runs[value_column], errors="coerce"),
                         "hue": "runs" if hue is None else hue.reindex(runs.index).astype(str)}).dropna()
    for name, part in data.groupby("hue", sort=True):
        dots = ax.scatter(part["x"], part["y"], s=18, alpha=0.7, label=f"{name} (n={len(part)})")
        means = part.groupby("x")["y"].mean()
        if len(means) < len(part):  # repeated values (seeds): their mean is worth a line
            ax.plot(means.index, means.values, color=dots.get_facecolor()[0], linewidth=1, alpha=0.8)
    if spans_decades(data["x"]):
        ax.set_xscale("log")
    ax.set(xlabel=key, ylabel=metric_name, title=f"{metric_name} vs {key} (lines: mean over repeats)")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return fig


def best_so_far(table: pd.DataFrame, metric_name: str, study: str) -> Figure:
    """A sweep's completed trial values and the best value so far, vs trial number.
    `table` comes from report.best_so_far."""
    fig, ax = _figure()
    ax.scatter(table["number"], table["value"], s=16, alpha=0.6, label="trial value")
    ax.step(table["number"], table["best"], where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=metric_name, title=f"{study}: best {metric_name} so far")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return fig


def importances(values: pd.Series, study: str) -> Figure:
    """Optuna's parameter importances as horizontal bars, most important on top."""
    fig, ax = _figure()
    ordered = values.sort_values()
    ax.barh(list(ordered.index), list(ordered.values), label=study)
    ax.set(xlabel="importance (Optuna default evaluator, sums to 1)", ylabel="parameter",
           title=f"{study}: parameter importances")
    ax.legend(fontsize="small", loc="lower right")
    return fig
