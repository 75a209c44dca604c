"""runner.plots: every figure has labelled axes, a title and a legend; log axes over decades."""
from __future__ import annotations

import pandas as pd
import pytest

from runner import plots


def labels(fig):
    ax = fig.axes[0]
    legend = ax.get_legend()
    return ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), [t.get_text() for t in legend.get_texts()] if legend else []


def test_learning_curves_one_line_and_band_per_group_best_first():
    table = pd.DataFrame({"group": ["a"] * 2 + ["b"] * 2, "epoch": [0, 1, 0, 1], "mean": [0.5, 0.7, 0.4, 0.6],
                          "min": [0.4, 0.6, 0.3, 0.5], "max": [0.6, 0.8, 0.5, 0.7], "n": [3, 3, 2, 2]})
    fig = plots.learning_curves(table, "val_acc", order=["b", "a"])
    xlabel, ylabel, _, legend = labels(fig)
    assert (xlabel, ylabel, legend) == ("epoch", "val_acc", ["b (n=2)", "a (n=3)"])
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [1, 2]  # epochs trained, not 0-based indices
    assert len(ax.collections) == 2  # one min-max band per group


def test_learning_curves_cap_the_number_of_groups():
    groups = [f"g{i}" for i in range(plots.MAX_CURVES + 3)]
    table = pd.DataFrame({"group": groups, "epoch": 0, "mean": 0.5, "min": 0.4, "max": 0.6, "n": 1})
    fig = plots.learning_curves(table, "val_acc", order=groups)
    assert len(fig.axes[0].lines) == plots.MAX_CURVES and f"of {len(groups)} groups" in fig.axes[0].get_title()


@pytest.mark.parametrize("xs, scale", [([1e-4, 1e-3, 1e-2, 1e-1], "log"), ([0.1, 0.2, 0.3], "linear"),
                                       ([-1.0, 10.0, 1000.0], "linear")])
def test_metric_vs_key_uses_a_log_axis_only_over_decades(xs, scale):
    runs = pd.DataFrame({"optimizer.lr": xs, "best_val_acc": [0.5 + 0.01 * i for i in range(len(xs))]})
    fig = plots.metric_vs_key(runs, "optimizer.lr", "best_val_acc", "val_acc")
    xlabel, ylabel, title, legend = labels(fig)
    assert (xlabel, ylabel) == ("optimizer.lr", "val_acc") and fig.axes[0].get_xscale() == scale
    assert legend == [f"runs (n={len(xs)})"] and not fig.axes[0].lines  # no repeats: no mean line


def test_metric_vs_key_colours_groups_and_averages_repeats():
    runs = pd.DataFrame({"optimizer.lr": [0.1, 0.1, 0.01, 0.001], "v": [0.8, 0.9, 0.7, 0.6],
                         "optimizer": ["sgd", "sgd", "sgd", "adam"]})
    fig = plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc", hue=runs["optimizer"])
    assert labels(fig)[3] == ["adam (n=1)", "sgd (n=3)"]
    (line,) = fig.axes[0].lines  # only sgd repeats a value: one mean line through 0.7 and 0.85
    assert list(line.get_xdata()) == [0.01, 0.1] and list(line.get_ydata()) == pytest.approx([0.7, 0.85])


def test_best_so_far_and_importances_are_labelled(tmp_path):
    history = pd.DataFrame({"number": [0, 1, 2], "value": [0.5, 0.4, 0.8], "best": [0.5, 0.5, 0.8]})
    xlabel, ylabel, title, legend = labels(plots.best_so_far(history, "val_acc", "demo"))
    assert (xlabel, ylabel, legend) == ("trial", "val_acc", ["trial value", "best so far"]) and "demo" in title
    fig = plots.importances(pd.Series({"optimizer.lr": 0.8, "model.width": 0.2}), "demo")
    xlabel, ylabel, _, legend = labels(fig)
    assert xlabel.startswith("importance") and ylabel == "parameter" and legend == ["demo"]
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["model.width", "optimizer.lr"]  # most important on top
    path = plots.save(fig, tmp_path / "imp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
