"""The report's figures: labelled axes, a title and a legend outside them; log axes over decades."""
from __future__ import annotations

import pandas as pd
import pytest

from optlab.report import plots


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
    table = pd.DataFrame({"branch": "all trials", "param": ["optimizer.lr", "model.width"], "importance": [0.8, 0.2],
                          "trials": 12})
    fig = plots.importances(table, "demo", "val_acc")
    xlabel, ylabel, title, legend = labels(fig)
    assert xlabel.startswith("importance") and ylabel == "parameter" and legend == ["all trials (12 trials)"]
    assert title == "demo: parameter importances for val_acc"
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["model.width", "optimizer.lr"]  # most important on top
    path = plots.save(fig, tmp_path / "imp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- legends, log axes, titles

def legend_boxes(fig):
    """(legend, axes) window extents of every axes with a legend, after a draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    return [(ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer))
            for ax in fig.axes if ax.get_legend()]


def curves_table():
    return pd.DataFrame({"group": ["optimizer=adam"] * 3 + ["optimizer=sgd"] * 3, "epoch": [0, 1, 2] * 2,
                         "mean": [0.5, 0.7, 0.9, 0.4, 0.6, 0.8], "min": [0.4, 0.6, 0.8, 0.3, 0.5, 0.7],
                         "max": [0.6, 0.8, 0.95, 0.5, 0.7, 0.9], "n": [3, 3, 3, 2, 2, 2]})


def every_report_figure():
    from optlab.report.layer_plots import (
        plot_health_over_training,
        plot_signal_vs_depth,
    )

    runs = pd.DataFrame({"optimizer.lr": [1e-3, 3e-3, 1e-2, 3e-2], "v": [0.5, 0.9, 0.8, 0.6], "optimizer": ["sgd"] * 4})
    layers = pd.DataFrame({"epoch": [-1, -1, 0, 0], "layer": [0, 1, 0, 1], "act_std": [1.0, 0.5, 1.0, 0.4],
                           "grad_norm": [0.1, 0.2, 0.1, 0.3], "saturated_frac": 0.1, "dead_frac": 0.2})
    importance = pd.DataFrame({"branch": ["all trials", "all trials", "optimizer=sgd"], "param": ["optimizer", "w", "lr"],
                               "importance": [0.9, 0.1, 1.0], "trials": [20, 20, 9]})
    return [plots.learning_curves(curves_table(), "val_acc", grouping="optimizer"),
            plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc", hue=runs["optimizer"], hue_name="optimizer"),
            plots.best_so_far(pd.DataFrame({"number": [0, 1, 2], "value": [0.5, 0.4, 0.8], "best": [0.5, 0.5, 0.8]}),
                              "val_acc", "demo"),
            plots.importances(importance, "demo", "val_acc"),
            plot_signal_vs_depth({"a": layers, "b": layers}), plot_health_over_training({"a": layers, "b": layers})]


def test_legends_sit_outside_the_axes():
    for fig in every_report_figure():
        boxes = legend_boxes(fig)
        assert boxes, fig
        for legend, axes in boxes:
            assert not legend.overlaps(axes), (fig.axes[0].get_title(), legend, axes)
        for legend, _ in boxes:  # nor over the neighbouring panel
            assert not any(legend.overlaps(other) for _, other in boxes)


def test_a_key_sampled_on_a_log_scale_gets_a_log_axis_over_less_than_two_decades():
    runs = pd.DataFrame({"optimizer.lr": [1e-3, 3e-3, 1e-2, 3e-2], "v": [0.5, 0.9, 0.8, 0.6]})  # 1.5 decades
    assert plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc").axes[0].get_xscale() == "linear"
    assert plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc", log=True).axes[0].get_xscale() == "log"
    wide = pd.DataFrame({"optimizer.lr": [1e-4, 1e-1], "v": [0.5, 0.6]})
    assert plots.metric_vs_key(wide, "optimizer.lr", "v", "val_acc", log=False).axes[0].get_xscale() == "linear"
    with_zero = pd.DataFrame({"optimizer.weight_decay": [0.0, 1e-3], "v": [0.5, 0.6]})
    fig = plots.metric_vs_key(with_zero, "optimizer.weight_decay", "v", "val_acc", log=True)
    assert fig.axes[0].get_xscale() == "linear"  # zero has no place on a log axis


def test_titles_say_what_is_drawn():
    curves, vs_key, history, importance, depth, health = (fig.axes[0].get_title() for fig in every_report_figure())
    assert curves == ("val_acc (validation) per epoch by optimizer: mean over runs, band = min-max\n"
                      "(n = 5 runs, a config and seed counted once)")
    assert vs_key == ("val_acc vs optimizer.lr\n"
                      "(one point per config and seed, colour = optimizer, lines = mean over seeds; n = 4)")
    assert "demo" in history and "n = 3 trials" in history and "best so far" in history
    assert importance == "demo: parameter importances for val_acc\nper branch of the conditional space"
    assert "at initialization" in depth and "n = 2 runs" in depth and "n = 2 runs" in health
    fig = plots.learning_curves(curves_table(), "train_loss")
    assert fig.axes[0].get_title().startswith("train_loss (training) per epoch: mean over runs")


def test_importances_draw_one_colour_per_branch_with_its_trials():
    table = pd.DataFrame({"branch": ["all trials", "all trials", "optimizer=sgd", "optimizer=sgd"],
                          "param": ["optimizer", "w", "lr_sgd", "w"], "importance": [0.9, 0.1, 0.7, 0.3],
                          "trials": [20, 20, 9, 9]})
    fig = plots.importances(table, "demo", "val_acc")
    _, _, _, legend = labels(fig)
    assert legend == ["all trials (20 trials)", "optimizer=sgd (9 trials)"]  # top to bottom, as the bars
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["w", "lr_sgd", "w", "optimizer"]  # bottom to top: the all-trials branch on top
    assert fig.axes[0].get_xlabel() == "importance (Optuna fANOVA, each branch sums to 1)"
