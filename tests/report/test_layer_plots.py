"""Per-layer plots: `optlab report --layers` draws each run's signal against depth."""
from optlab.training.api import train

DEEP_TANH = ("model=mlp", "model.depth=20", "model.width=64", "activation=tanh")


def test_report_layers_plots_signal_against_depth(compose_cfg, optlab, tmp_path):
    from optlab.report.layer_plots import load_layers, plot_signal_vs_depth

    for init in ("init=normal", "init=xavier_uniform"):
        train(compose_cfg(*DEEP_TANH, "model.depth=6", init, "trainer.diagnostics=true", "trainer.epochs=1"))
    result = optlab("report", "--layers", "outputs/runs", "--out", "layers_report")
    assert result.returncode == 0, result.stderr
    out = tmp_path / result.stdout.strip().splitlines()[-1]
    assert (out / "layers_depth.png").stat().st_size > 0 and (out / "layers_training.png").stat().st_size > 0
    runs = sorted((tmp_path / "outputs" / "runs").iterdir())
    figure = plot_signal_vs_depth({r.name: load_layers(r) for r in runs})
    for ax in figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and len(ax.get_legend().get_texts()) == 2
