"""The comparison's figures: each contender's performance profile beside the table of ratios
it is made from (workload x contender, the time to target over the fastest contender's),
and the reruns of each contender's chosen setting per workload."""
from __future__ import annotations

import math
from pathlib import Path

OFFSET = 0.006  # vertical step between contenders' lines, so that equal profiles stay visible


def draw(spec, tables, path: Path, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c.name for c in spec.contenders]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.0), gridspec_kw={"width_ratios": [1.15, 1]})
    _profiles(left, spec, tables, names)
    _ratios(right, fig, spec, tables, names)
    p = spec.protocol
    fig.suptitle(f"{spec.name}{' (quick)' if quick else ''}: steps to each workload's validation target, "
                 f"median of {p.studies} tuning stud{'y' if p.studies == 1 else 'ies'} x {p.trials} trials",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _profiles(ax, spec, tables, names: list[str]) -> None:
    tau_max = spec.protocol.tau_max
    scores = {r["contender"]: r for r in tables.scores}
    styles = ["-", "--", "-.", ":"]
    for i, c in sorted(enumerate(names), key=lambda ic: -scores[ic[1]]["score"]):  # the legend best first
        rows = [r for r in tables.profile if r["contender"] == c]
        taus = [r["tau"] for r in rows]
        shift = (i - (len(names) - 1) / 2) * OFFSET
        rhos = [r["rho"] + shift for r in rows]
        s = scores[c]
        ax.step(taus, rhos, where="post", color=f"C{i % 10}", linestyle=styles[i % len(styles)], linewidth=1.8,
                label=f"{c}: score {s['score']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]")
    ax.set_xlim(1, tau_max)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("tau: time to target within tau x the fastest contender's", fontsize=9)
    ax.set_ylabel(f"fraction of the {len(spec.workloads)} workloads", fontsize=9)
    ax.set_title(f"performance profiles; score = area / ({tau_max:g} - 1), 95% bootstrap interval\n"
                 f"(lines offset by {OFFSET:g} each so that equal ones stay visible)", fontsize=8)
    ax.grid(alpha=0.3)
    # below the axes: inside, it would cover the lines it names
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)


def _ratios(ax, fig, spec, tables, names: list[str]) -> None:
    import numpy as np

    tau_max = spec.protocol.tau_max
    workloads = [w.name for w in spec.workloads]
    ratio = [[tables.times[w][c] / min(tables.times[w].values()) if math.isfinite(tables.times[w][c]) else math.inf
              for c in names] for w in workloads]
    shown = np.array([[min(r, tau_max + 0.5) if math.isfinite(r) else np.nan for r in row] for row in ratio])
    image = ax.imshow(np.ma.masked_invalid(shown), cmap="viridis_r", vmin=1, vmax=tau_max + 0.5, aspect="auto")
    ax.set_facecolor("0.35")
    for i, row in enumerate(ratio):
        for j, r in enumerate(row):
            text = "never" if not math.isfinite(r) else f"{r:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if r > 2.2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    targets = [f"{w}\n{spec.workload(w).metric} {_op(spec.workload(w))} {tables.targets[w]['target']:.4g}"
               for w in workloads]
    ax.set_yticks(range(len(workloads)), targets, fontsize=7)
    ax.set_title("ratio to the fastest (never: most studies missed the target)", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).set_label("ratio (capped)", fontsize=8)


def _op(w) -> str:
    return ">=" if w.maximize else "<="


def draw_tuned(spec, tables, path: Path, quick: bool) -> None:
    """Per workload, each contender's chosen setting over its rerun seeds: the mean with its
    95% interval and every seed's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optlab.compare.pairwise import summary

    names = [c.name for c in spec.contenders]
    fig, axes = plt.subplots(1, len(spec.workloads), figsize=(3.2 * len(spec.workloads) + 1, 3.8), squeeze=False)
    for ax, w in zip(axes[0], spec.workloads):
        for i, c in enumerate(names):
            values = [v for v in tables.reruns[w.name][c] if math.isfinite(v)]
            s = summary(values)
            if s["n"] > 1:
                low = s["ci_low"] if w.maximize or s["ci_low"] > 0 else min(values)  # a log axis: no bar below 0
                ax.errorbar(i, s["mean"], yerr=[[s["mean"] - low], [s["ci_high"] - s["mean"]]],
                            fmt="o", color=f"C{i % 10}", capsize=4, markersize=6)
            ax.scatter([i] * len(values), values, color="k", s=8, zorder=3)
        if not w.maximize:
            ax.set_yscale("log")  # losses of tuned and untuned settings lie decades apart
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{w.name}: {w.metric} at the {spec.protocol.at} epoch\n"
                     f"({'higher' if w.maximize else 'lower'} is better; margin {w.margin:g})", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{spec.name}{' (quick)' if quick else ''}: each contender's chosen setting, "
                 f"{spec.protocol.rerun_seeds} fresh seeds (mean, 95% t-interval cut at the lowest seed on a "
                 f"log axis, every seed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
