"""A PBT sweep's report: every member's metric and searched values over epochs, with the best
member's lineage (followed back through its donors) drawn bold, and the table of final
members. For the PNG (pbt_figure), the report page (pbt_sections) and pbt_members.csv.

A member's config.yaml holds its initial values; the values it trained with at each epoch
are metrics.csv's columns of the searched keys, and its exploits are its lineage.csv."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from optlab.report import plots
from optlab.report.html_page import chart_layout, column_type, is_missing, rounded


@dataclass
class PbtView:
    study: str
    label: str                       # the members' value: the metric, its split and epoch (metric_label)
    metric: str
    per_epoch: str                   # the metric at each epoch, as an axis says it
    keys: list[str]                  # the searched keys
    log_keys: set[str]               # those sampled on a log scale
    rows: dict[int, pd.DataFrame]    # member -> its metrics.csv
    owners: list[int]                # per epoch: the member whose run holds the best lineage then
    best: int
    members: pd.DataFrame            # the table of final members


def pbt_view(sweep) -> PbtView | None:
    """The view of a sweep folder that ran with scheduler: pbt (None for any other sweep, or
    one whose members have not started)."""
    from optlab.runs.folder import read_metric_rows
    from optlab.sweep.pbt_state import lineage, read_state
    from optlab.sweep.pbt_worker import best_member, member_value
    from optlab.sweep.spec import metric_label, spec_from_dict

    if sweep.meta.get("scheduler") != "pbt":
        return None
    state = read_state(Path(sweep.path))
    if state is None or any(m["run_dir"] is None for m in state.members):
        return None
    spec = spec_from_dict(sweep.meta)
    rows = {m["member"]: pd.DataFrame(read_metric_rows(Path(sweep.path) / m["run_dir"])) for m in state.members}
    values = {k: member_value(r.to_dict("records"), spec) for k, r in rows.items()}
    best = best_member(values, spec.direction)
    if best is None:
        return None
    keys = [p.key for p in spec.space]
    table = pd.DataFrame([{"member": m["member"], "trial": m["trial"], "run": Path(m["run_dir"]).name,
                           "value": values[m["member"]], "exploits": len(state.events_of(m["member"])),
                           "donors": " ".join(str(e["donor"]) for e in state.events_of(m["member"])),
                           **{f"initial {k}": m["initial"][k] for k in keys},
                           **{f"final {k}": state.values(m["member"])[k] for k in keys}} for m in state.members])
    table = table.sort_values(["value", "member"], ascending=[spec.direction != "maximize", True], na_position="last")
    return PbtView(spec.study, metric_label(spec.metric, spec.at), spec.metric, metric_label(spec.metric, None), keys,
                   {p.key for p in spec.space if p.log}, rows, lineage(state, best)[0], best, table)


def lineage_values(view: PbtView, column: str) -> list[float]:
    """The best lineage's values of a metrics.csv column, epoch by epoch."""
    return [float(view.rows[owner][column].iloc[epoch]) if epoch < len(view.rows[owner]) else math.nan
            for epoch, owner in enumerate(view.owners)]


def donors_text(view: PbtView) -> str:
    passed = [o for i, o in enumerate(view.owners) if i == 0 or o != view.owners[i - 1]]
    return f"member {view.best}" + (f", from {' -> '.join(map(str, passed))}" if len(passed) > 1 else "")


def pbt_figure(view: PbtView) -> Figure:
    """One panel for the metric and one per searched key, against epochs: a thin line per
    member, the best member's lineage bold."""
    panels = [view.metric, *view.keys]
    fig = Figure(figsize=(7.5, 2.6 * len(panels) + 0.6))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, column in zip(axes, panels):
        for i, (member, rows) in enumerate(sorted(view.rows.items())):
            if column in rows:
                plots.line(ax, rows["epoch"] + 1, rows[column], i, linewidth=0.9, alpha=0.55, markersize=3,
                           label=f"member {member}", drawstyle="default" if column == view.metric else "steps-mid")
        epochs = list(range(1, len(view.owners) + 1))
        ax.plot(epochs, lineage_values(view, column), color="black", linewidth=2.4, zorder=5,
                label=f"best lineage ({donors_text(view)})",
                drawstyle="default" if column == view.metric else "steps-mid")
        ax.set_ylabel(view.per_epoch if column == view.metric else column)
        if column in view.log_keys:
            plots.log_scale(ax)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("epoch (1 = the first epoch trained)")
    plots.integer_ticks(axes[-1].xaxis)
    plots.legend_outside(axes[0])
    axes[0].set_title(f"PBT sweep {view.study}: {len(view.rows)} members per epoch (bold: the best member's "
                      f"lineage,\nfollowed back through its donors; a jump is an exploit)", fontsize="medium")
    return fig


def pbt_sections(view: PbtView | None) -> list[dict]:
    """The report page's charts (the metric and each key per epoch, the best lineage bold) and
    the table of final members."""
    if view is None:
        return []
    sections = []
    for column in (view.metric, *view.keys):
        traces = [{"type": "scatter", "mode": "lines", "name": f"member {member}", "x": [int(e) + 1 for e in rows["epoch"]],
                   "y": rounded(rows[column]), "line": {"width": 1, "shape": "linear" if column == view.metric else "hvh"},
                   "opacity": 0.6, "hovertemplate": f"member {member}, epoch %{{x}}: %{{y}}<extra></extra>"}
                  for member, rows in sorted(view.rows.items()) if column in rows]
        traces.append({"type": "scatter", "mode": "lines", "name": f"best lineage ({donors_text(view)})",
                       "x": list(range(1, len(view.owners) + 1)), "y": rounded(pd.Series(lineage_values(view, column))),
                       "line": {"width": 3, "color": "#111", "shape": "linear" if column == view.metric else "hvh"}})
        name = view.per_epoch if column == view.metric else column
        layout = chart_layout(f"{view.study}: {name} per epoch", "epoch", name)
        if column in view.log_keys:
            layout["yaxis"]["type"] = "log"
        sections.append({"kind": "chart", "id": f"pbt-{view.study}-{column}", "title": f"PBT {view.study}: {name}",
                         "caption": "every member per epoch; bold: the best member's lineage, followed back through "
                                    "its donors (a jump in a member's line is an exploit: it took a top member's weights)",
                         "figure": {"data": traces, "layout": layout}})
    table = view.members
    sections.append({"kind": "table", "id": f"pbt-{view.study}-members", "title": f"PBT {view.study}: final members",
                     "caption": f"value: {view.label}; exploits: rounds in which the member took a top member's "
                                "state (donors in order); initial values are its trial's params",
                     "columns": [{"key": c, "label": c, "type": column_type(table[c])} for c in table.columns],
                     "rows": [{"cells": {k: (None if is_missing(v) else v) for k, v in row.items()}}
                              for _, row in table.iterrows()]})
    return sections
