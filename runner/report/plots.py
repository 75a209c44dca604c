"""Report pictures with matplotlib, headless: figures are built on matplotlib.figure.Figure
(Agg canvas, no pyplot state), returned for inspection, and saved by save().

Every figure has labelled axes, a title that says what is drawn (the metric, its split and
epoch, the grouping, how many runs) and a legend outside the axes, so it never covers data.
The rules every figure of optlab follows (report, study and lr-find figures use the helpers
here):
- epochs are numbered from 1 (metrics.csv's epoch 0 is epoch 1; 0 is the initialization);
  epoch, step, trial and layer axes have integer ticks only;
- an axis of a positive numeric key is logarithmic when its values span a decade or more;
- the i-th curve has its own colour, line style and marker, so two curves that coincide
  stay distinguishable; legends show values to 3 significant digits.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, LogFormatter, MaxNLocator, NullLocator

MAX_CURVES = 10  # more groups than this: the best ranked ones are drawn, the title says so
MAX_TICKED_VALUES = 12  # a grid of at most this many values gets a tick and a line through each
GRID_GAPS = 2.5  # how uneven a grid's steps may be (on a linear or a log scale) before it reads as a sample
MIN_IMPORTANCE_TRIALS = 20  # fANOVA on fewer trials: the figure carries a warning
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")  # with 4 line styles: 20 distinct pairs
MARKERS_PER_LINE = 12


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight" takes in the legend beside the axes
    return Path(path)


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(7.5, 4.5))
    return fig, fig.add_subplot()


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the axes, top-aligned."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


# ---------------------------------------------------------------- the shared rules

def style(i: int) -> dict:
    """The i-th curve's colour, line style and marker (hollow for every other curve): curves
    that coincide (two arms with equal results) stay apart by style and marker, not by colour
    alone, which the later one hides."""
    return {"color": f"C{i % 10}", "linestyle": LINESTYLES[i % len(LINESTYLES)], "marker": MARKERS[i % len(MARKERS)],
            "fillstyle": "full" if i % 2 == 0 else "none"}


def dots(ax, x, y, i: int, size: float = 22, **kwargs):
    """A scatter in the i-th style's colour and marker, hollow where its lines' markers are."""
    look = style(i)
    face = look["color"] if look["fillstyle"] == "full" else "none"
    return ax.scatter(x, y, s=size, marker=look["marker"], facecolors=face, edgecolors=look["color"], **kwargs)


def line(ax, x, y, i: int, **kwargs):
    """One curve in the i-th style, markers thinned to about MARKERS_PER_LINE along it."""
    points = len(x)
    return ax.plot(x, y, **{**style(i), "markersize": 4, "markevery": max(1, points // MARKERS_PER_LINE), **kwargs})[0]


def integer_ticks(axis) -> None:
    """Epochs, steps, trials and layers are counted: no tick at 2.5 (nor at 0.98 around a lone 1)."""
    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))


class _PlainMinorLabels(LogFormatter):
    """matplotlib's choice of which in-between ticks of a log axis to label, written as plain
    numbers (20, 30, 0.06; not 2x10^1 or 6e-02)."""

    def __call__(self, x, pos=None) -> str:
        return significant(x) if super().__call__(x, pos) else ""


def log_scale(ax, which: str = "y") -> None:
    """A log axis; over less than two decades its in-between ticks are labelled too, plainly."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis.set_minor_formatter(_PlainMinorLabels(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def wants_log(values, sampled_log: bool | None = None) -> bool:
    """A log axis for a positive key whose values span a decade or more, or that a sweep
    sampled on a log scale; never with a value <= 0 (it has no place on one)."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if values.empty or values.min() <= 0:
        return False
    return bool(sampled_log) or math.log10(values.max() / values.min()) >= 1.0


def is_grid(values) -> bool:
    """Whether a key's values look like a grid, not a random sample: at most MAX_TICKED_VALUES
    of them, evenly spaced on a linear or a log scale (64, 128, 256; 0.001, 0.003, 0.01; the
    largest gap at most GRID_GAPS times the smallest), so a tick and a line through each help."""
    distinct = sorted(pd.to_numeric(pd.Series(values), errors="coerce").dropna().unique())
    if not 1 < len(distinct) <= MAX_TICKED_VALUES:
        return False
    scales = [distinct] + ([[math.log10(v) for v in distinct]] if distinct[0] > 0 else [])
    for where in scales:
        gaps = [b - a for a, b in zip(where, where[1:])]
        if max(gaps) <= GRID_GAPS * min(gaps):
            return True
    return False


def key_axis(ax, values, sampled_log: bool | None = None) -> None:
    """The x axis of a config key: log by wants_log; a grid's values get a tick each, written
    out (64, 128, 256, not 10^2); integer keys get integer ticks."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    log = wants_log(values, sampled_log)
    if log:
        log_scale(ax, "x")
    if is_grid(values):
        distinct = sorted(values.unique())
        ax.xaxis.set_major_locator(FixedLocator(distinct))
        ax.xaxis.set_major_formatter(lambda value, _: significant(value))
        ax.xaxis.set_minor_locator(NullLocator())
        if len(distinct) > 6:
            ax.tick_params(axis="x", labelrotation=30)
    elif not log and len(values) and (values == values.round()).all():
        integer_ticks(ax.xaxis)


def significant(value: float, digits: int = 3) -> str:
    """A number to `digits` significant digits, whole numbers as they are (1024, not 1.02e+03)."""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.{digits}g}"


_VALUE = re.compile(r"(?<==)[-+]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?(?=$|[,\s)])")


def natural_order(labels) -> list[str]:
    """Labels in the order of their numbers (width=64 before width=256), text alphabetically."""
    def key(label: str) -> list:
        parts = re.split(r"([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)", label)
        return [(0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p]

    return sorted(labels, key=key)


def legend_labels(labels: list[str]) -> list[str]:
    """Group labels ('optimizer.lr=0.0031622776, model.width=64') with every key's number to 3
    significant digits, more where 3 would make two labels alike."""
    for digits in range(3, 18):
        shown = [_VALUE.sub(lambda m, d=digits: significant(float(m.group()), d), label) for label in labels]
        if len(set(shown)) == len(set(labels)):
            return shown
    return list(labels)


# ---------------------------------------------------------------- the report's figures

def learning_curves(table: pd.DataFrame, column: str, order: list[str] | None = None, grouping: str = "") -> Figure:
    """Mean of `column` per group vs epoch (from 1), with a min-max band over the group's runs.
    `table` comes from report.group_curves; `order` lists groups best first; `grouping`
    names the grouping keys for the title."""
    fig, ax = _figure()
    groups = [g for g in (order or sorted(table["group"].unique())) if g in set(table["group"])]
    shown = groups[:MAX_CURVES]
    runs_drawn = 0
    for i, (group, label) in enumerate(zip(shown, legend_labels(shown))):
        part = table[table["group"] == group].sort_values("epoch")
        epochs = part["epoch"] + 1  # metrics.csv's epoch 0 is the first epoch
        runs = int(part["n"].max())
        runs_drawn += runs
        drawn = line(ax, epochs, part["mean"], i, label=f"{label} (n={runs})")
        ax.fill_between(epochs, part["min"], part["max"], color=drawn.get_color(), alpha=0.2, linewidth=0)
    more = f", best {len(shown)} of {len(groups)} groups" if len(groups) > len(shown) else ""
    split = _split(column)
    ax.set(xlabel="epoch", ylabel=column,
           title=f"{column}{f' ({split})' if split else ''} per epoch{f' by {grouping}' if grouping else ''}: "
                 f"mean over runs, band = min-max\n(n = {runs_drawn} runs, a config and seed counted once{more})")
    integer_ticks(ax.xaxis)
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig


def _split(column: str) -> str:
    from optlab.report.groups import split_of

    return split_of(column)


def colour_keys(runs: pd.DataFrame, key: str, keys: list[str]) -> tuple[list[str], list[str]]:
    """(the grouping keys a metric-vs-`key` plot colours by, the ones it pools): every other
    grouping key gets a colour per value, so no line mixes runs that differ in one, except a
    numeric key sampled at random (no value repeats, or more combinations than MAX_CURVES):
    a colour per sampled value says nothing, so it is pooled and the title says so."""
    others = [k for k in keys if k != key and k in runs]
    numeric = [k for k in others if pd.to_numeric(runs[k], errors="coerce").notna().all()]
    sampled = [k for k in numeric if runs[k].nunique() == len(runs) > 2]
    coloured = [k for k in others if k not in sampled]
    if len(runs[coloured].astype(str).drop_duplicates()) > MAX_CURVES:
        coloured = [k for k in coloured if k not in numeric]
    return coloured, [k for k in others if k not in coloured]


def metric_vs_key(runs: pd.DataFrame, key: str, value_column: str, metric_name: str,
                  hue: pd.Series | None = None, hue_name: str = "", log: bool | None = None,
                  pooled: str = "") -> Figure:
    """Each run's metric against a numeric config key, one colour and marker per group (`hue`,
    named `hue_name`, e.g. the optimizer or the width), and per group a line through the mean
    over seeds at each value when the key takes few values (a grid). `runs` holds one row per
    seed the statistics use. The x axis follows key_axis (`log`: the sweep sampled the key on
    a log scale); `pooled` names grouping keys the colours do not separate."""
    fig, ax = _figure()
    data = pd.DataFrame({"x": pd.to_numeric(runs[key], errors="coerce"),
                         "y": pd.to_numeric(runs[value_column], errors="coerce"),
                         "hue": "runs" if hue is None else hue.reindex(runs.index).astype(str)}).dropna()
    grid = is_grid(data["x"])
    names = natural_order(data["hue"].unique())
    for i, (name, label) in enumerate(zip(names, legend_labels(names))):
        part = data[data["hue"] == name]
        look = style(i)
        dots(ax, part["x"], part["y"], i, alpha=0.8, label=f"{label} (n={len(part)})")
        means = part.groupby("x")["y"].mean()
        if len(means) > 1 and (grid or len(means) < len(part)):
            ax.plot(means.index, means.values, color=look["color"], linestyle=look["linestyle"], linewidth=1.2)
    key_axis(ax, data["x"], log)
    colour = f", colour = {hue_name}" if hue_name else ""
    mixed = f", pooled over {pooled}" if pooled else ""
    lines = ", lines = mean over seeds" if ax.lines else ""
    ax.set(xlabel=key, ylabel=metric_name, title=f"{metric_name} vs {key}\n"
           f"(one point per config and seed{colour}{mixed}{lines}; n = {len(data)})")
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
                 f"and the best so far (n = {len(table)} trials; trial numbers as in trials.csv)")
    integer_ticks(ax.xaxis)
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig


def importances(table: pd.DataFrame, study: str, metric_name: str = "the objective") -> Figure:
    """Parameter importances as horizontal bars, one colour per branch of the space (from
    report.branch_importances: branch, param, importance, trials), most important on top
    within each branch. A branch of fewer than MIN_IMPORTANCE_TRIALS trials puts a warning
    in the title: fANOVA's ranking on so few is mostly noise."""
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
    fewest = int(table["trials"].min())
    few = fewest < MIN_IMPORTANCE_TRIALS
    ax.set_xlabel(f"importance (Optuna fANOVA{per_branch})")
    ax.set_ylabel("parameter")
    ax.set_title(f"{study}: parameter importances for {metric_name}"
                 + ("\nper branch of the conditional space" if len(branches) > 1 else ""), pad=20 if few else 6)
    if few:  # under the title, above the bars
        ax.text(0.0, 1.02, f"warning: from only {fewest} trials (fewer than {MIN_IMPORTANCE_TRIALS}): "
                "a rough ranking, not a measurement", transform=ax.transAxes, color="firebrick", fontsize="small")
    handles, names = ax.get_legend_handles_labels()
    legend_outside(ax, handles=handles[::-1], labels=names[::-1])  # top to bottom, as the bars
    return fig


# ---------------------------------------------------------------- the learning-rate range test

def lr_range_test(result) -> Figure:
    """`optlab lr-find`'s curve (a training.lrfind.RangeTest): the loss and its smoothed curve
    against the learning rate, and the two learning rates read off it, each labelled as one."""
    fig, ax = _figure()
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=0.8, label="training loss (each step)")
    ax.plot(result.lrs, result.smoothed, color="C0", label="smoothed loss")
    for lr, label, i in ((result.steepest_lr, "lr of steepest descent", 2),
                         (result.min_loss_lr / 10, "lr of the minimum loss / 10", 1)):
        ax.axvline(lr, color=f"C{i}", linestyle=LINESTYLES[i], label=f"{label} = {significant(lr, 2)}")
    ax.set_xscale("log")
    finite = [v for v in (*result.smoothed, *result.losses) if math.isfinite(v)]
    if finite:  # from the lowest loss seen to a little above the start: the blow-up is cut off
        low = min(finite)
        ax.set_ylim(low * 0.9 if low > 0 else low, result.smoothed[0] * 1.5 + 1e-12)
    ax.set(xlabel="learning rate (log scale; grows every step)", ylabel="training loss",
           title=f"LR range test: suggested learning rate {significant(result.suggested_lr, 2)}\n"
                 f"(the smaller of the two marked; {len(result.lrs)} steps)")
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig
