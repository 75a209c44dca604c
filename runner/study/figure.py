"""A study's figure: bars per arm (mean, 95% interval, each seed), curves over epochs, or
a per-layer statistic against depth."""
from __future__ import annotations

import math
from pathlib import Path


def draw(spec, values: dict, records: list, path: Path, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    kind = spec.figure["kind"]
    if kind == "bars":
        _bars(ax, spec, values)
    elif kind == "curves":
        _curves(ax, spec, records)
    else:
        _layers(ax, spec, records)
    if spec.figure.get("log"):
        ax.set_yscale("log")
    title = spec.figure.get("title") or spec.name
    ax.set_title(f"{title}{' (quick)' if quick else ''}", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars(ax, spec, values: dict) -> None:
    from optlab.study.verdict import arm_summary, finite

    name = spec.figure.get("measure") or spec.criteria[0]["measure"]
    per_arm = values[name]
    arms = [a.name for a in spec.arms]
    for i, arm in enumerate(arms):
        seeds = finite(per_arm[arm])
        s = arm_summary(per_arm[arm])
        if s["n"]:
            low, high = s["ci_low"], s["ci_high"]
            err = [[s["mean"] - low], [high - s["mean"]]] if s["n"] > 1 else None
            ax.bar(i, s["mean"], color=f"C{i}", alpha=0.5, yerr=err, capsize=4)
        ax.scatter([i] * len(seeds), seeds, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(arms)), arms, rotation=20, fontsize=8)
    ax.set_ylabel(name + " (bar: mean, 95% CI; dots: seeds)", fontsize=8)


def _curves(ax, spec, records: list) -> None:
    from optlab.study.measure import rows_of

    column = spec.figure.get("column", "val_acc")
    x_key = spec.figure.get("x", "epoch")
    for i, arm in enumerate(a.name for a in spec.arms):
        runs = [rows_of(r.path) for r in records if r.arm == arm]
        for j, rows in enumerate(runs):
            xs = [r[x_key] for r in rows]
            ys = [r.get(column, math.nan) for r in rows]
            ax.plot(xs, ys, color=f"C{i}", alpha=0.6, lw=1, label=arm if j == 0 else None)
    ax.set_xlabel(x_key)
    ax.set_ylabel(f"{column} (one line per seed)")


def _layers(ax, spec, records: list) -> None:
    from optlab.study.measure import layer_rows

    stat, epoch = spec.figure.get("stat", "act_std"), int(spec.figure.get("epoch", -1))
    for i, arm in enumerate(a.name for a in spec.arms):
        for j, record in enumerate(r for r in records if r.arm == arm):
            rows = layer_rows(record.path, epoch)
            if rows is None:
                continue
            ax.plot([int(r["layer"]) + 1 for r in rows], [float(r[stat]) for r in rows], color=f"C{i}",
                    alpha=0.7, lw=1, marker=".", label=arm if j == 0 else None)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(f"{stat} at {'initialization' if epoch < 0 else f'epoch {epoch}'} (one line per seed)", fontsize=8)
