"""A study's figure: one panel, or several side by side (`figure: {panels: [...]}`), each
showing a quantity the verdict compares. Every arm keeps one colour, line style and marker
across the panels, and one legend beside them names the arms, the thresholds and bounds.

Panel kinds:
- bars: a measure per arm: the mean with its 95% interval and every seed's value. On a log
  axis (`log: true`) a point with the interval of the log10 values (the geometric mean, as a
  `log: true` criterion compares), never a bar; with a value of 0 a symmetric-log axis that
  shows it. The threshold of every one-arm every_seed criterion on the measure is drawn.
- curves: a metrics.csv `column` against epoch (1 = the first) or `x: step`: per arm each
  seed thin, the mean over seeds bold with its 95% interval band (where every seed has a
  value; of log10 values on a log axis). The target of every to_target measure on the
  column is drawn. An arm with an inner grid shows, per seed, the variant whose value the
  panel's `measure` (default: that to_target measure) took.
- layers: a layers.csv `stat` against hidden layer at `epoch` (-1: initialization), drawn as
  curves are; the bound each one-arm every_seed criterion puts on a ratio or per-layer
  factor of that statistic is drawn from the arm's first layer as a dotted guide.
- trials: every completed trial of the sweep arms, its value against the searched key `x`;
  each seed's best ringed.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from optlab.study.spec import figure_panels


@dataclass(frozen=True)
class Context:
    spec: object
    values: dict       # measure -> arm -> seed -> value
    rows: list         # measure_all's per-run rows: arm, seed, variant, path and each measure's value

    @property
    def arms(self) -> list[str]:
        return [a.name for a in self.spec.arms]


def draw(spec, values: dict, rows: list[dict], path: Path, quick: bool):
    """The figure to `path` (written whole or not at all); returns it."""
    from matplotlib.figure import Figure

    from optlab.report.plots import save

    panels = figure_panels(spec.figure)
    fig = Figure(figsize=(1.6 + 5.6 * len(panels), 4.6), layout="constrained")
    context = Context(spec, values, rows)
    for ax, panel in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        PANELS[panel["kind"]](ax, context, panel)
        ax.grid(alpha=0.3)
    title = spec.figure.get("title") or spec.name
    fig.suptitle(f"{title}{' (quick: shrunk, not a reproduction)' if quick else ''}", fontsize=11)
    _legend(fig)
    partial = Path(path).with_name(f".{Path(path).stem}.{os.getpid()}.tmp.png")
    save(fig, partial)
    os.replace(partial, path)
    return fig


def _legend(fig) -> None:
    """One legend for every panel, under them (beside them it would meet a long title): the
    arms (the same look in every panel), then what else the panels draw, each label once."""
    entries: dict = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize=8, frameon=False,
                   ncol=min(3, len(entries)))


def _arm_handle(ax, i: int, arm: str, seeds: int) -> None:
    """The arm's legend entry: its colour, line style and marker."""
    from optlab.report.plots import style

    ax.plot([], [], **style(i), label=f"{arm} ({seeds} seed{'s' if seeds != 1 else ''})")


# ---------------------------------------------------------------- bars: a measure per arm

def _bars(ax, context: Context, panel: dict) -> None:
    from optlab.report.plots import style
    from optlab.study.measure import measure_range

    name = panel.get("measure") or context.spec.criteria[0]["measure"]
    per_arm = context.values[name]
    scale = _value_scale(per_arm, bool(panel.get("log")))
    for i, arm in enumerate(context.arms):
        look, seeds = style(i), _finite(per_arm[arm])
        mean, low, high = _centre(seeds, scale == "log", measure_range(context.spec, name))
        if seeds and scale == "linear":
            ax.bar(i, mean, width=0.5, color=look["color"], alpha=0.35)
        if seeds:
            ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]] if len(seeds) > 1 else None,
                        fmt="none" if scale == "linear" else look["marker"], color=look["color"], capsize=5,
                        markersize=8, elinewidth=1.5, fillstyle=look["fillstyle"])
        _seed_dots(ax, context, name, arm, i)
        _arm_handle(ax, i, arm, len(seeds))
    _thresholds(ax, context, name)
    ax.set_xticks(range(len(context.arms)), context.arms, rotation=20 if len(context.arms) > 2 else 0, fontsize=8)
    ax.set_xlim(-0.6, len(context.arms) - 0.4)
    ax.set_ylabel(f"{name}{_unit(context.spec.measures[name])}")
    _set_scale(ax, scale, [v for arm in per_arm for v in _finite(per_arm[arm])] + _threshold_values(context, name))
    what = {"linear": "bar = mean", "log": "point = geometric mean", "symlog": "point = mean"}[scale]
    ax.set_title(f"{name} per arm: {what}, whiskers = 95% interval,\nblack dots = each seed", fontsize=9)


def _seed_dots(ax, context: Context, name: str, arm: str, i: int) -> None:
    """Each seed's value beside the arm's mean; a seed that never reached a to_target measure's
    target (censored: its budget, a lower bound) as a hollow triangle."""
    per_seed = {seed: v for seed, v in context.values[name][arm].items() if v is not None and math.isfinite(v)}
    censored = _censored_seeds(context, name, arm)
    for j, (seed, value) in enumerate(sorted(per_seed.items())):
        x = i + 0.3 + 0.1 * (j / max(len(per_seed) - 1, 1))
        if seed in censored:
            ax.scatter([x], [value], marker="^", facecolors="none", edgecolors="k", s=28, zorder=3,
                       label="seed that never reached the target (its budget: a lower bound)")
        else:
            ax.scatter([x], [value], color="k", s=10, zorder=3)


def _censored_seeds(context: Context, name: str, arm: str) -> set:
    """Seeds whose every run of the arm is censored for measure `name`."""
    flag, per_seed = f"{name}_censored", {}
    for row in context.rows:
        if row["arm"] == arm:
            per_seed.setdefault(row["seed"], []).append(row.get(flag) is True)
    return {seed for seed, flags in per_seed.items() if all(flags)}


def _unit(measure: dict) -> str:
    if measure["kind"] == "to_target":
        return f" ({'epochs' if measure.get('unit') == 'epochs' else 'steps'} to the target)"
    return ""


def _finite(per_seed: dict) -> list[float]:
    from optlab.study.verdict import finite

    return finite(per_seed)


def _value_scale(per_arm: dict, log: bool) -> str:
    """linear; log; or symlog when a log axis would have to drop a value of 0."""
    if not log:
        return "linear"
    values = [v for arm in per_arm for v in _finite(per_arm[arm])]
    return "log" if all(v > 0 for v in values) else "symlog"


def _centre(values: list[float], log: bool, bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """(mean, 95% interval) of the values, of their log10 (back on the value's scale) with log;
    the interval inside `bounds`, the values they can take (the verdict's interval)."""
    from optlab.report.stats import ANY, describe

    if not values:
        return math.nan, math.nan, math.nan
    d = describe([math.log10(v) for v in values] if log else values, bounds=ANY if log or bounds is None else bounds)
    if log:
        return 10 ** d["mean"], 10 ** d["ci_low"], 10 ** d["ci_high"]
    return d["mean"], d["ci_low"], d["ci_high"]


def _set_scale(ax, scale: str, values: list[float]) -> None:
    from optlab.report.plots import log_scale

    if scale == "symlog":  # linear from 0 up to a tenth of the smallest positive value, log above
        positive = [abs(v) for v in values if v != 0]
        floor = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-6
        ax.set_yscale("symlog", linthresh=floor)
        ax.set_ylim(bottom=-floor / 2)
        ax.set_ylabel(f"{ax.get_ylabel()}\n(log scale above {floor:g}, linear below it: 0 shown)")
    elif scale == "log":
        log_scale(ax)
        ax.set_ylabel(f"{ax.get_ylabel()} (log scale)")


def _every_seed_bounds(context: Context, name: str) -> list[tuple[int, dict]]:
    """(arm index, criterion) of each one-arm every_seed criterion on measure `name`."""
    return [(context.arms.index(c["arm"]), c) for c in context.spec.criteria
            if c["kind"] == "every_seed" and c["measure"] == name and "arm" in c]


def _threshold_values(context: Context, name: str) -> list[float]:
    return [float(c["threshold"]) for _, c in _every_seed_bounds(context, name)]


def _thresholds(ax, context: Context, name: str) -> None:
    """Each one-arm every_seed threshold across that arm's place: the line every seed must clear."""
    for i, c in _every_seed_bounds(context, name):
        ax.hlines(float(c["threshold"]), i - 0.45, i + 0.45, colors="firebrick", linestyles="--", linewidth=1.3,
                  label="threshold of an every-seed criterion")
        ax.annotate(f"every seed {c['op']} {c['threshold']:g}", (i - 0.45, float(c["threshold"])), fontsize=7,
                    color="firebrick", xytext=(0, 3), textcoords="offset points")


# ---------------------------------------------------------------- curves and layers: a line per seed

def _seed_lines(ax, i: int, series: list[pd.Series], log: bool, mean: bool = True,
                bounds: tuple[float, float] | None = None) -> pd.Series | None:
    """Each seed's curve thin; with `mean`, the mean over seeds bold in the arm's style with its
    95% interval band, where every seed has a finite (with log: positive) value. Returns the mean."""
    from optlab.report.plots import line, style

    look = style(i)
    for curve in series:
        ax.plot(curve.index, curve.values, color=look["color"], alpha=0.3, linewidth=0.8)
    if not series or not mean:
        return None
    table = pd.concat(series, axis=1).sort_index().replace([math.inf, -math.inf], math.nan)
    complete = (table.where(table > 0) if log else table).dropna()
    if complete.empty:
        return None
    centre = pd.DataFrame([_centre(list(row), log, bounds) for row in complete.itertuples(index=False)],
                          index=complete.index, columns=["mean", "low", "high"])
    if len(centre) == 1:  # one point (a single epoch): a band has no width; a whisker, beside the other arms'
        x = centre.index[0]
        ax.errorbar([x + 0.05 * i], centre["mean"], yerr=[centre["mean"] - centre["low"], centre["high"] - centre["mean"]],
                    **{**look, "linestyle": "none"}, capsize=5)
        ax.set_xlim(x - 0.5, x + 0.5)
        return centre["mean"]
    line(ax, centre.index, centre["mean"], i, linewidth=2)
    if len(series) > 1:
        ax.fill_between(centre.index, centre["low"], centre["high"], color=look["color"], alpha=0.18, linewidth=0)
    return centre["mean"]


def _curves(ax, context: Context, panel: dict) -> None:
    from optlab.report.plots import integer_ticks, log_scale
    from optlab.report.stats import value_range

    column, x_key, log = panel.get("column", "val_acc"), panel.get("x", "epoch"), bool(panel.get("log"))
    measure = panel.get("measure") or next((n for n, m in context.spec.measures.items()
                                            if m["kind"] == "to_target" and m["column"] == column), None)
    chose_variants = False
    for i, arm in enumerate(context.arms):
        if context.spec.arm(arm).sweep is not None:
            continue
        runs = _runs_per_seed(context, arm, measure)
        seeds = len({r["seed"] for r in runs})
        chose_variants |= len(runs) < len([r for r in context.rows if r["arm"] == arm])
        series = [curve for curve in (_curve(Path(r["path"]), x_key, column) for r in runs) if len(curve)]
        _seed_lines(ax, i, series, log, mean=seeds == len(runs), bounds=value_range(column))
        _arm_handle(ax, i, arm, seeds)
    _targets(ax, context, column)
    if log:
        log_scale(ax)
    integer_ticks(ax.xaxis)
    ax.set(xlabel="epoch" if x_key == "epoch" else x_key, ylabel=f"{column}{' (log scale)' if log else ''}")
    mean = "geometric mean" if log else "mean"
    picked = f"\nan arm's inner grid: per seed the variant whose {measure} counts" if chose_variants else ""
    ax.set_title(f"{column} per {x_key}: thin = each seed, bold = {mean} over seeds,\n"
                 f"band = 95% interval of the {mean}{picked}", fontsize=9)


def _runs_per_seed(context: Context, arm: str, measure: str | None) -> list[dict]:
    """The arm's runs, one per seed where it has an inner grid: the variant whose value of
    `measure` is the seed's value (the min or max over variants that the verdict used)."""
    by_seed: dict = {}
    for row in context.rows:
        if row["arm"] == arm:
            by_seed.setdefault(row["seed"], []).append(row)
    chosen = []
    for seed, runs in sorted(by_seed.items()):
        if len(runs) > 1 and measure:
            value = context.values[measure][arm].get(seed)
            runs = [next((r for r in runs if _same(r.get(measure), value)), runs[0])]
        chosen += runs
    return chosen


def _same(a, b) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or a == b


def _curve(run_dir: Path, x_key: str, column: str) -> pd.Series:
    """One run's `column` against epoch (metrics.csv's epoch + 1: the first epoch is 1) or step."""
    from optlab.study.measure import rows_of

    rows = rows_of(run_dir)
    shift = 1 if x_key == "epoch" else 0
    curve = pd.Series([r.get(column, math.nan) for r in rows], index=[r[x_key] + shift for r in rows], dtype=float)
    return curve[~curve.index.duplicated(keep="last")]


def _targets(ax, context: Context, column: str) -> None:
    """The target of each to_target measure on `column`: the line its steps are counted to."""
    for name, m in context.spec.measures.items():
        if m["kind"] == "to_target" and m["column"] == column:
            ax.axhline(float(m["target"]), color="firebrick", linestyle="--", linewidth=1.2,
                       label=f"target of {name}: {column} {m.get('op', '<=')} {float(m['target']):g}")


def _layers(ax, context: Context, panel: dict) -> None:
    from optlab.report.plots import integer_ticks, log_scale
    from optlab.report.stats import value_range

    stat, epoch, log = panel.get("stat", "act_std"), int(panel.get("epoch", -1)), bool(panel.get("log"))
    means = {}
    for i, arm in enumerate(context.arms):
        runs = [r for r in context.rows if r["arm"] == arm]
        series = [s for s in (_layer_series(Path(r["path"]), stat, epoch) for r in runs) if s is not None and len(s)]
        means[arm] = _seed_lines(ax, i, series, log, bounds=value_range(stat))
        _arm_handle(ax, i, arm, len(series))
    _bounds(ax, context, stat, epoch, means)
    if log:
        log_scale(ax)
    integer_ticks(ax.xaxis)
    when = "initialization" if epoch < 0 else f"the end of epoch {epoch + 1}"
    ax.set(xlabel="hidden layer (1 = the first)", ylabel=f"{stat} at {when}{' (log scale)' if log else ''}")
    mean = "geometric mean" if log else "mean"
    ax.set_title(f"{stat} per hidden layer at {when}: thin = each seed,\n"
                 f"bold = {mean} over seeds, band = 95% interval", fontsize=9)


def _layer_series(run_dir: Path, stat: str, epoch: int) -> pd.Series | None:
    from optlab.study.measure import layer_rows

    rows = layer_rows(run_dir, epoch)
    if rows is None:
        return None
    return pd.Series([float(r[stat]) for r in rows], index=[int(r["layer"]) + 1 for r in rows], dtype=float)


def _bounds(ax, context: Context, stat: str, epoch: int, means: dict) -> None:
    """The bound a one-arm every_seed criterion sets on a layer measure's ratio (last / first
    layer) or per-layer factor, drawn from the arm's mean first layer as a constant factor
    per layer: the arm's mean line must end beyond it for the criterion to hold."""
    for name, m in context.spec.measures.items():
        reduce = m.get("reduce", "ratio")
        if m["kind"] != "layer" or m["stat"] != stat or int(m.get("epoch", -1)) != epoch or \
                reduce not in ("ratio", "per_layer"):
            continue
        for i, c in _every_seed_bounds(context, name):
            mean = means.get(c["arm"])
            if mean is None or len(mean) < 2:
                continue
            first, last = mean.index[0], mean.index[-1]
            factor = float(c["threshold"]) ** (1.0 if reduce == "per_layer" else 1.0 / (last - first))
            layers = pd.Series(mean.index, dtype=float)
            ax.plot(layers, mean.iloc[0] * factor ** (layers - first), color=f"C{i % 10}", linestyle=":",
                    linewidth=1.4, label=f"bound: {name}({c['arm']}) {c['op']} {float(c['threshold']):g}")


# ---------------------------------------------------------------- trials: what each sweep arm tried

def _trials(ax, context: Context, panel: dict) -> None:
    from optlab.report.plots import key_axis, log_scale

    key, tried, sampled_log, metric = panel["x"], [], None, "value"
    for i, arm in enumerate(context.arms):
        sweep = context.spec.arm(arm).sweep
        if sweep is None:
            continue
        metric = str(sweep.get("metric", metric))
        sampled_log = sampled_log or bool((sweep.get("space") or {}).get(key, {}).get("log"))
        seeds = 0
        for row in (r for r in context.rows if r["arm"] == arm):
            points = _trial_points(Path(row["path"]), key)
            if points:
                seeds += 1
                tried += [x for x, _ in points]
                _trial_dots(ax, i, points, str(sweep.get("direction", "minimize")))
        _arm_handle(ax, i, arm, seeds)
    ax.scatter([], [], facecolors="none", edgecolors="0.3", s=90, label="each seed's best trial")
    key_axis(ax, tried, sampled_log)
    if panel.get("log"):
        log_scale(ax)
    ax.set(xlabel=f"{key}{' (log scale)' if ax.get_xscale() == 'log' else ''}",
           ylabel=f"{metric}{' (log scale)' if panel.get('log') else ''}")
    pbt = any((context.spec.arm(a).sweep or {}).get("scheduler") == "pbt" for a in context.arms)
    ax.set_title(f"every completed trial: the {key} each arm tried and its {metric}\n"
                 f"({len(tried)} trials in all; one small mark per trial"
                 f"{f'; a PBT member at its initial {key}' if pbt else ''})", fontsize=9)


def _trial_points(sweep_dir: Path, key: str) -> list[tuple[float, float]]:
    """(value of `key`, objective) of each completed trial in the sweep's trials.csv."""
    from optlab.sweep.outputs import read_trial_rows

    column = f"param.{key}"
    return [(float(t[column]), float(t["value"])) for t in read_trial_rows(sweep_dir)
            if t.get("state") == "COMPLETE" and t.get("value") and t.get(column)]


def _trial_dots(ax, i: int, points: list[tuple[float, float]], direction: str) -> None:
    from optlab.report.plots import dots, style

    look = style(i)
    xs, ys = zip(*points)
    dots(ax, xs, ys, i, size=18, alpha=0.6)
    best = (max if direction == "maximize" else min)(points, key=lambda p: p[1])
    ax.scatter([best[0]], [best[1]], facecolors="none", edgecolors=look["color"], s=90, linewidths=1.3, zorder=3)


PANELS: dict = {"bars": _bars, "curves": _curves, "layers": _layers, "trials": _trials}
