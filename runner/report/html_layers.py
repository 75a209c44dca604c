"""The page of diagnostics runs (trainer.diagnostics=true): every per-layer statistic of
layers.csv against depth, one line per run, at each recorded epoch (a menu picks the epoch),
and the mean saturated and dead fractions over training."""
from __future__ import annotations

from pathlib import Path

from optlab.report import html_page
from optlab.report.html_page import COLOURS, chart_layout, rounded
from optlab.report.layer_plots import load_layers, run_label

STATISTICS = {"act_std": "activation std", "act_mean": "activation mean", "grad_norm": "weight gradient norm",
              "update_ratio": "update-to-weight ratio", "weight_std": "weight std",
              "saturated_frac": "saturated fraction", "dead_frac": "dead ReLU fraction"}
LOG_SCALED = ("act_std", "grad_norm", "update_ratio", "weight_std")  # spans orders of magnitude across depth


def layers_page(run_dirs: list[Path]) -> dict:
    """The page's dict for these runs' layers.csv files."""
    tables = {}
    for run_dir in run_dirs:
        label = run_label(run_dir)
        while label in tables:
            label += "'"
        tables[label] = (Path(run_dir), load_layers(run_dir))
    sections = [depth_chart(tables, stat) for stat in STATISTICS
                if any(stat in table and table[stat].notna().any() for _, table in tables.values())]
    sections.append(health_chart(tables))
    return {"title": "optlab report: per-layer diagnostics",
            "subtitle": "layers.csv of runs trained with trainer.diagnostics=true: one training batch per record",
            "facts": html_page.generated_facts({"runs": len(tables)}), "notes": [], "runs": [], "groups": [],
            "sections": sections}


def _when(epoch: int) -> str:
    return "at initialization" if epoch == -1 else f"after epoch {epoch}"


def depth_chart(tables: dict, stat: str) -> dict:
    """The statistic per layer, one line per run, one set of lines per recorded epoch: the menu
    shows one epoch at a time (initialization first)."""
    epochs = sorted({int(e) for _, table in tables.values() for e in table["epoch"].unique()})
    traces, owner = [], []
    for epoch in epochs:
        for i, (label, (run_dir, table)) in enumerate(tables.items()):
            at = table[table["epoch"] == epoch].sort_values("layer")
            if at.empty or stat not in at:
                continue
            traces.append({"type": "scatter", "mode": "lines+markers", "name": label, "visible": epoch == epochs[0],
                           "x": list(at["layer"].astype(int) + 1), "y": rounded(at[stat]), "marker": {"size": 5},
                           "line": {"color": COLOURS[i % len(COLOURS)]}, "text": [f"{label}<br>{run_dir}"] * len(at),
                           "hovertemplate": "%{text}<br>layer %{x}: %{y}<extra></extra>"})
            owner.append(epoch)
    name = STATISTICS[stat]
    buttons = [{"label": _when(epoch), "method": "update",
                "args": [{"visible": [o == epoch for o in owner]}, {"title.text": f"{name} per layer {_when(epoch)}"}]}
               for epoch in epochs]
    layout = chart_layout(f"{name} per layer {_when(epochs[0])}", "layer (depth)", name, xaxis={"dtick": 1},
                     yaxis={"type": "log" if stat in LOG_SCALED else "linear"})
    layout["updatemenus"] = [{"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.18, "yanchor": "top"}]
    layout["margin"]["t"] = 80
    return {"kind": "chart", "id": f"layers-{stat}", "title": f"{name} against depth",
            "caption": "one line per run; the menu picks the record (initialization, or the last step of an epoch)",
            "figure": {"data": traces, "layout": layout}}


def health_chart(tables: dict) -> dict:
    """Saturated and dead fractions, each the mean over the run's layers, per record."""
    traces = []
    for i, (label, (_, table)) in enumerate(tables.items()):
        per_epoch = table.groupby("epoch")[["saturated_frac", "dead_frac"]].mean()
        x = list(per_epoch.index.astype(int) + 1)
        for column, dash in (("saturated_frac", "solid"), ("dead_frac", "dot")):
            traces.append({"type": "scatter", "mode": "lines+markers", "name": f"{label}: {STATISTICS[column]}",
                           "x": x, "y": rounded(per_epoch[column]), "line": {"color": COLOURS[i % 10], "dash": dash}})
    layout = chart_layout("saturated (solid) and dead (dotted) fractions, mean over layers",
                     "epochs trained (0 = initialization)", "fraction of units", yaxis={"range": [-0.02, 1.02]})
    return {"kind": "chart", "id": "layers-health", "title": "Saturated and dead units over training",
            "caption": "each the mean over the run's layers, at every record", "figure": {"data": traces, "layout": layout}}
