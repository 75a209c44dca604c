"""Per-layer plots: `optlab report --layers` draws each run's signal against depth."""
import pandas as pd
from testkit import legend_collisions, looks, visible_ticks

from optlab.report.layer_plots import plot_health_over_training, plot_signal_vs_depth
from optlab.training.api import train

DEEP_TANH = ("model=mlp", "model.depth=20", "model.width=64", "activation=tanh")


def test_report_layers_plots_signal_against_depth(compose_cfg, optlab, tmp_path):
    from optlab.report.layer_plots import load_layers

    for init in ("init=normal", "init=xavier_uniform"):
        train(compose_cfg(*DEEP_TANH, "model.depth=6", init, "trainer.diagnostics=true", "trainer.epochs=1"))
    result = optlab("report", "--layers", "outputs/runs", "--out", "layers_report")
    assert result.returncode == 0, result.stderr
    out = tmp_path / result.stdout.strip().splitlines()[-1]
    assert (out / "layers_depth.png").stat().st_size > 0 and (out / "layers_training.png").stat().st_size > 0
    runs = sorted((tmp_path / "outputs" / "runs").iterdir())
    figure = plot_signal_vs_depth({r.name: load_layers(r) for r in runs})
    for ax in figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    assert len(figure.legends) == 1 and len(figure.legends[0].get_texts()) == 2  # one legend for both panels
    assert legend_collisions(figure) == []


def layers_table(layers: int = 3, records: tuple = (-1, 0)) -> pd.DataFrame:
    rows = [{"epoch": e, "layer": i, "act_std": 0.5 ** i, "grad_norm": 0.1, "saturated_frac": 0.1, "dead_frac": 0.2}
            for e in records for i in range(layers)]
    return pd.DataFrame(rows)


def test_layer_and_epoch_axes_are_counted_in_whole_numbers_from_1():
    tables = {"tanh normal(0.01) norm=none": layers_table(), "tanh xavier_uniform(gain=1.0) norm=none": layers_table()}
    depth, health = plot_signal_vs_depth(tables), plot_health_over_training(tables)
    for fig in (depth, health):
        assert legend_collisions(fig) == []
        for ax in fig.axes:
            ticks = visible_ticks(ax.xaxis)
            assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_xlabel(), ticks)
    assert list(depth.axes[0].lines[0].get_xdata()) == [1, 2, 3]  # layer 1 is the first
    assert list(health.axes[0].lines[0].get_xdata()) == [0, 1]  # 0: initialization, 1: after the first epoch
    assert "after epoch 1" in plot_signal_vs_depth(tables, epoch=0).axes[0].get_title()


def test_runs_with_equal_curves_stay_distinguishable():
    tables = {"a": layers_table(), "b": layers_table()}  # the same numbers: one line would hide the other
    for fig in (plot_signal_vs_depth(tables), plot_health_over_training(tables)):
        first, second = looks(fig.axes[0])
        assert first != second
