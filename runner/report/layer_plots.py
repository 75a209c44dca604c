"""Plots of layers.csv (trainer.diagnostics=true): signal against depth, and health over training."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from optlab.errors import DataError


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


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_signal_vs_depth(tables: dict[str, pd.DataFrame], epoch: int = -1):
    """Activation std and weight-gradient norm against layer index at one record (-1: at init)."""
    plt = _pyplot()
    fig, (ax_act, ax_grad) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, table in tables.items():
        at = table[table["epoch"] == epoch].sort_values("layer")
        ax_act.plot(at["layer"] + 1, at["act_std"], marker="o", markersize=3, label=label)
        ax_grad.plot(at["layer"] + 1, at["grad_norm"], marker="o", markersize=3, label=label)
    when = "at initialization" if epoch == -1 else f"after epoch {epoch}"
    for ax, what in ((ax_act, "activation std"), (ax_grad, "weight gradient norm")):
        ax.set_yscale("log")
        ax.set_xlabel("layer (depth)")
        ax.set_ylabel(what)
        ax.set_title(f"{what} per layer {when}\n(one training batch, one line per run; n = {len(tables)} runs)")
        _legend_below(ax)
    fig.tight_layout()
    return fig


def _legend_below(ax) -> None:
    """Under the axes (the two panels sit side by side, so a legend to the right of the
    first would cover the second): never over the data."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), borderaxespad=0.0)


def plot_health_over_training(tables: dict[str, pd.DataFrame]):
    """Mean saturated and dead-unit fractions over the layers, per record epoch."""
    plt = _pyplot()
    fig, (ax_sat, ax_dead) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, table in tables.items():
        per_epoch = table.groupby("epoch")[["saturated_frac", "dead_frac"]].mean()
        ax_sat.plot(per_epoch.index + 1, per_epoch["saturated_frac"], marker="o", markersize=3, label=label)
        ax_dead.plot(per_epoch.index + 1, per_epoch["dead_frac"], marker="o", markersize=3, label=label)
    for ax, what in ((ax_sat, "saturated fraction"), (ax_dead, "dead ReLU fraction")):
        ax.set_xlabel("epochs trained (0 = initialization)")
        ax.set_ylabel(f"{what} (mean over layers)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{what}, mean over layers\n(one line per run; n = {len(tables)} runs)")
        _legend_below(ax)
    fig.tight_layout()
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
        fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        written.append(out_dir / name)
    return written
