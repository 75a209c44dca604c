"""Plots of layers.csv (trainer.diagnostics=true): signal against depth, and health over training."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from optlab.errors import DataError
from optlab.report.plots import integer_ticks, legend_labels, line, save


def load_layers(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "layers.csv"
    if not path.is_file():
        raise DataError(f"{run_dir}: no layers.csv (train with trainer.diagnostics=true)")
    table = pd.read_csv(path, on_bad_lines="skip")
    if table.empty:
        raise DataError(f"{path}: no rows")
    return table


def run_label(run_dir: Path) -> str:
    """A short label from the run's config: model, depth, activation, init, norm."""
    from optlab import safe_yaml
    from optlab.errors import DataError

    path = Path(run_dir) / "config.yaml"
    try:
        cfg = safe_yaml.load_file(path, DataError) if path.is_file() else None
    except DataError:  # damaged: the folder's name stands in
        cfg = None
    if not isinstance(cfg, dict):
        return Path(run_dir).name
    parts = [cfg.get("activation", {}).get("name"), cfg.get("init", {}).get("name"), f"norm={cfg.get('norm', {}).get('name')}"]
    init = cfg.get("init", {})
    if init.get("name") == "normal":
        parts[1] = f"normal({init.get('std')})"
    elif init.get("gain") is not None:
        parts[1] = f"{init['name']}(gain={init['gain']})"
    return " ".join(str(p) for p in parts if p)


def plot_signal_vs_depth(tables: dict[str, pd.DataFrame], epoch: int = -1) -> Figure:
    """Activation std and weight-gradient norm against layer (1 = the first) at one record of
    layers.csv (-1: at initialization; e: after epoch e + 1, epochs counted from 1)."""
    fig, axes = _panels()
    for i, (label, table) in enumerate(tables.items()):
        at = table[table["epoch"] == epoch].sort_values("layer")
        for ax, column in zip(axes, ("act_std", "grad_norm")):
            line(ax, at["layer"] + 1, at[column], i, label=label)
    when = "at initialization" if epoch == -1 else f"after epoch {epoch + 1}"
    for ax, what in zip(axes, ("activation std", "weight gradient norm")):
        ax.set_yscale("log")
        integer_ticks(ax.xaxis)
        ax.set(xlabel="layer (1 = the first)", ylabel=what,
               title=f"{what} per layer {when}\n(one training batch, one line per run; n = {len(tables)} runs)")
    return _finish(fig, axes)


def plot_health_over_training(tables: dict[str, pd.DataFrame]) -> Figure:
    """Mean saturated and dead-unit fractions over the layers, per record, against epochs
    trained (0: initialization, 1: after the first epoch)."""
    fig, axes = _panels()
    for i, (label, table) in enumerate(tables.items()):
        per_epoch = table.groupby("epoch")[["saturated_frac", "dead_frac"]].mean()
        for ax, column in zip(axes, ("saturated_frac", "dead_frac")):
            line(ax, per_epoch.index + 1, per_epoch[column], i, label=label)
    for ax, what in zip(axes, ("saturated fraction", "dead ReLU fraction")):
        integer_ticks(ax.xaxis)
        ax.set(xlabel="epochs trained (0 = initialization)", ylabel=f"{what} (mean over layers)", ylim=(-0.02, 1.02),
               title=f"{what}, mean over layers\n(one line per run; n = {len(tables)} runs)")
    return _finish(fig, axes)


def _panels() -> tuple[Figure, list]:
    fig = Figure(figsize=(12, 4.5))
    return fig, list(fig.subplots(1, 2))


def _finish(fig: Figure, axes: list) -> Figure:
    """One legend for both panels (the same runs), under the figure: beside the first panel
    it would cover the second, under an axes its label."""
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, legend_labels(labels), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=2 if len(labels) > 3 else 1)
    return fig


def write_layer_plots(run_dirs: list[Path], out_dir: Path) -> list[Path]:
    tables = {}
    for run_dir in run_dirs:
        label = run_label(run_dir)
        while label in tables:
            label += "'"
        tables[label] = load_layers(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in (("layers_depth.png", plot_signal_vs_depth(tables)),
                      ("layers_training.png", plot_health_over_training(tables))):
        written.append(save(fig, out_dir / name))
    return written
