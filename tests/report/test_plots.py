"""The report's figures: labelled axes, a title and a legend outside them; log axes over decades;
integer ticks where things are counted; curves that stay apart; the lr-find figure."""
from __future__ import annotations

import pandas as pd
import pytest
from testkit import config, legend_collisions, looks, visible_ticks, write_run

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
                                       ([-1.0, 10.0, 1000.0], "linear"), ([64, 128, 256, 512, 1024], "log"),
                                       ([32, 64, 128, 256], "linear")])
def test_metric_vs_key_uses_a_log_axis_when_a_positive_key_spans_a_decade(xs, scale):
    runs = pd.DataFrame({"optimizer.lr": xs, "best_val_acc": [0.5 + 0.01 * i for i in range(len(xs))]})
    fig = plots.metric_vs_key(runs, "optimizer.lr", "best_val_acc", "val_acc")
    xlabel, ylabel, title, legend = labels(fig)
    assert (xlabel, ylabel) == ("optimizer.lr", "val_acc") and fig.axes[0].get_xscale() == scale
    assert legend == [f"runs (n={len(xs)})"]


@pytest.mark.parametrize("xs, line", [([1e-4, 1e-3, 1e-2, 1e-1], True), ([32, 64, 128, 256], True),
                                      ([0.001, 0.003, 0.01, 0.03, 0.1, 0.3], True),
                                      ([0.00026, 0.00065, 0.0024, 0.0049, 0.0191, 0.0229, 0.083, 0.615], False),
                                      ([2.6e-6, 6.6e-6, 6.1e-5, 1.3e-4, 1.7e-4, 2.5e-4, 4.5e-4, 3.4e-3], False)])
def test_a_grid_gets_a_line_and_a_tick_at_each_value_a_random_sample_only_points(xs, line):
    runs = pd.DataFrame({"optimizer.lr": xs, "v": [0.5 + 0.01 * i for i in range(len(xs))]})
    ax = plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc").axes[0]
    legend_collisions(ax.figure)  # draws it
    assert len(ax.lines) == line and (visible_ticks(ax.xaxis) == xs) == line


def test_a_grid_of_widths_is_ticked_at_its_values_written_out():
    runs = pd.DataFrame({"model.width": [64, 128, 256, 512, 1024], "v": [0.5, 0.6, 0.7, 0.8, 0.9]})
    ax = plots.metric_vs_key(runs, "model.width", "v", "val_acc (best epoch)").axes[0]
    legend_collisions(ax.figure)  # draws it
    assert ax.get_xscale() == "log" and visible_ticks(ax.xaxis) == [64, 128, 256, 512, 1024]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "128", "256", "512", "1024"]
    assert ax.get_ylabel() == "val_acc (best epoch)" and ax.get_title().startswith("val_acc (best epoch) vs model.width")


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
            plot_signal_vs_depth({"a": layers, "b": layers}), plot_health_over_training({"a": layers, "b": layers}),
            plots.lr_range_test(range_test())]


def range_test():
    from optlab.training.lrfind import RangeTest

    lrs = [1e-5 * 10 ** (i / 10) for i in range(50)]
    losses = [2.3 - 0.04 * i if i < 40 else 0.7 + 0.5 * (i - 40) for i in range(50)]
    return RangeTest(lrs, losses, losses, steepest_lr=lrs[20], min_loss_lr=lrs[39])


def test_legends_cover_no_data_and_no_label():
    for fig in every_report_figure():
        assert fig.legends or any(ax.get_legend() for ax in fig.axes), fig
        assert legend_collisions(fig) == [], fig.axes[0].get_title()


def test_a_key_sampled_on_a_log_scale_gets_a_log_axis_under_a_decade_and_any_key_over_one():
    runs = pd.DataFrame({"optimizer.lr": [1e-3, 2e-3, 4e-3, 8e-3], "v": [0.5, 0.9, 0.8, 0.6]})  # 0.9 decades
    assert plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc").axes[0].get_xscale() == "linear"
    assert plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc", log=True).axes[0].get_xscale() == "log"
    wide = pd.DataFrame({"optimizer.lr": [1e-4, 1e-1], "v": [0.5, 0.6]})  # sampled linearly, still 3 decades
    assert plots.metric_vs_key(wide, "optimizer.lr", "v", "val_acc", log=False).axes[0].get_xscale() == "log"
    with_zero = pd.DataFrame({"optimizer.weight_decay": [0.0, 1e-3], "v": [0.5, 0.6]})
    fig = plots.metric_vs_key(with_zero, "optimizer.weight_decay", "v", "val_acc", log=True)
    assert fig.axes[0].get_xscale() == "linear"  # zero has no place on a log axis


def test_titles_say_what_is_drawn():
    curves, vs_key, history, importance, depth, health, _ = (fig.axes[0].get_title() for fig in every_report_figure())
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


def test_importances_from_fewer_than_20_trials_carry_a_warning():
    def warning(trials):
        table = pd.DataFrame({"branch": "all trials", "param": ["optimizer.lr", "model.width"],
                              "importance": [0.8, 0.2], "trials": trials})
        return " ".join(text.get_text() for text in plots.importances(table, "demo", "val_acc").axes[0].texts)

    assert "only 12 trials (fewer than 20)" in warning(12) and warning(20) == ""


# ---------------------------------------------------------------- what a reader would stumble over

def test_epoch_and_trial_axes_have_integer_ticks_only():
    history = pd.DataFrame({"number": [0, 1, 2], "value": [0.5, 0.4, 0.8], "best": [0.5, 0.5, 0.8]})
    table = curves_table()[lambda t: t["epoch"] < 2]  # two epochs: a locator left alone ticks 1.2, 1.4, ...
    one = curves_table()[lambda t: t["epoch"] == 0]  # one epoch: 0.96, 0.98, 1.0, ...
    for fig in (plots.best_so_far(history, "val_acc", "demo"), plots.learning_curves(table, "val_acc"),
                plots.learning_curves(one, "val_acc")):
        legend_collisions(fig)  # draws it
        ticks = visible_ticks(fig.axes[0].xaxis)
        assert ticks and all(float(t).is_integer() for t in ticks), (fig.axes[0].get_xlabel(), ticks)


def test_legends_show_values_to_three_significant_digits_and_keep_labels_apart():
    table = curves_table().replace({"optimizer=adam": "optimizer.lr=0.0031622776601683794, model.width=1024",
                                    "optimizer=sgd": "optimizer.lr=1e-05, model.width=64"})
    legend = labels(plots.learning_curves(table, "val_acc"))[3]
    assert legend == ["optimizer.lr=0.00316, model.width=1024 (n=3)", "optimizer.lr=1e-05, model.width=64 (n=2)"]
    assert plots.legend_labels(["lr=0.0010001", "lr=0.0010002"]) == ["lr=0.0010001", "lr=0.0010002"]
    assert plots.legend_labels([f"source=/runs/0.123456/a"]) == ["source=/runs/0.123456/a"]  # a path is no number


def test_two_equal_curves_stay_distinguishable():
    table = curves_table()
    table.loc[table["group"] == "optimizer=sgd", ["mean", "min", "max", "n"]] = \
        table.loc[table["group"] == "optimizer=adam", ["mean", "min", "max", "n"]].to_numpy()
    first, second = looks(plots.learning_curves(table, "val_acc").axes[0])
    assert first != second
    runs = pd.DataFrame({"optimizer.lr": [0.1, 0.01, 0.1, 0.01], "v": [0.8, 0.7, 0.8, 0.7],
                         "optimizer": ["sgd", "sgd", "adam", "adam"]})
    first, second = plots.metric_vs_key(runs, "optimizer.lr", "v", "val_acc", hue=runs["optimizer"]).axes[0].lines
    assert first.get_linestyle() != second.get_linestyle()


def test_a_report_by_two_keys_draws_one_line_per_value_of_the_other_key(tmp_path):
    from optlab import report
    from optlab.cli import report as report_cli

    for width in (64, 256):
        for lr in (1e-3, 1e-2, 1e-1):
            for seed in (0, 1):
                cfg = config("sgd", lr=lr, seed=seed)
                cfg["model"]["width"] = width
                write_run(tmp_path / "runs", f"w{width}-lr{lr}-s{seed}", cfg, [0.5, 0.6 + lr + width / 1e4])
    collection = report.load([tmp_path / "runs"])
    metric = report.resolve_metric("val_acc", collection)
    keys = ["model.width", "optimizer.lr"]
    captured = Captured()
    report_cli.write_plots(collection, report.aggregate(collection, keys, metric), keys, metric, ("completed",),
                           captured)
    by_lr = captured.figures["val_acc_vs_optimizer.lr.png"].axes[0]
    assert labels(by_lr.figure)[3] == ["model.width=64 (n=6)", "model.width=256 (n=6)"] and len(by_lr.lines) == 2
    by_width = captured.figures["val_acc_vs_model.width.png"].axes[0]
    assert labels(by_width.figure)[3] == [f"optimizer.lr={lr} (n=4)" for lr in ("0.001", "0.01", "0.1")]
    assert len(by_width.lines) == 3 and "colour = optimizer.lr" in by_width.get_title()


def test_a_key_sampled_at_random_is_pooled_not_coloured_and_the_title_says_so():
    runs = pd.DataFrame({"optimizer.lr": [0.01 * (i + 1) for i in range(6)], "wd": [1e-5 * (i + 1) for i in range(6)],
                         "optimizer": ["sgd", "adam"] * 3, "width": [64, 64, 64, 256, 256, 256]})
    keys = ["optimizer.lr", "wd", "optimizer", "width"]
    assert plots.colour_keys(runs, "optimizer.lr", keys) == (["optimizer", "width"], ["wd"])
    fig = plots.metric_vs_key(runs.assign(v=0.5), "optimizer.lr", "v", "val_acc", hue=runs["optimizer"],
                              hue_name="optimizer", pooled="wd")
    assert "colour = optimizer, pooled over wd" in fig.axes[0].get_title()


class Captured:
    """A report folder that keeps the figures instead of writing them."""

    def __init__(self):
        self.figures = {}

    def save(self, fig, name):
        self.figures[name] = fig


def test_the_lr_find_figure_labels_its_marks_as_learning_rates():
    fig = plots.lr_range_test(range_test())
    ax = fig.axes[0]
    marks = [line.get_label() for line in ax.get_lines() if line.get_label().startswith("lr ")]
    assert marks == ["lr of steepest descent = 0.001", "lr of the minimum loss / 10 = 0.0079"]
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("learning rate")
    assert "suggested learning rate 0.001" in ax.get_title() and legend_collisions(fig) == []
