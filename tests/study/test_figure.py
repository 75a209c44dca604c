"""A study's figure: the quantity its verdict compares, each seed with the mean and its 95%
band, the targets, thresholds and bounds the criteria use, points (not bars) on log axes."""
from __future__ import annotations

import csv

import pytest
from matplotlib.collections import LineCollection, PolyCollection
from testkit import config, legend_collisions, looks, visible_ticks, write_run

from optlab.study.figure import draw
from optlab.study.spec import figure_panels, load_study, spec_from_dict, study_names
from optlab.study.verdict import arm_summary

SEEDS = (0, 1, 2)
MEASURES = {"acc": {"kind": "metric", "column": "val_acc"},
            "to_loss": {"kind": "to_target", "column": "train_loss", "target": 0.3},
            "ratio": {"kind": "layer", "stat": "act_std", "epoch": -1, "reduce": "ratio"}}
CRITERIA = [{"kind": "every_seed", "measure": "acc", "arm": "a", "op": ">", "threshold": 0.5},
            {"kind": "every_seed", "measure": "ratio", "arm": "b", "op": ">", "threshold": 0.5}]


def study(figure: dict, arms: dict | None = None):
    return spec_from_dict("demo", {"claim": "c", "source": "s", "scaled_down": "d", "seeds": len(SEEDS),
                                   "arms": arms or {"a": [], "b": []}, "measures": MEASURES,
                                   "criteria": CRITERIA, "figure": figure})


def write_layers(folder, stds: list[float]) -> None:
    with open(folder / "layers.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["epoch", "layer", "act_std"])
        out.writerows([-1, i, std] for i, std in enumerate(stds))


@pytest.fixture
def runs(tmp_path):
    """Arms a and b with the same curves seed by seed (train_loss = 1 - val_acc; 10 steps an
    epoch): (values, rows) as measure_all gives them."""
    values, rows = {name: {"a": {}, "b": {}} for name in MEASURES}, []
    for arm in ("a", "b"):
        for seed in SEEDS:
            accs = [0.5 + 0.01 * seed, 0.75, 0.9 - 0.01 * seed]
            folder = write_run(tmp_path / "runs", f"{arm}-seed{seed}", config(seed=seed), accs)
            write_layers(folder, [1.0, 0.7, 0.5 - 0.05 * seed])
            measured = {"acc": accs[-1], "to_loss": 20.0, "ratio": 0.5 - 0.05 * seed}
            for name, value in measured.items():
                values[name][arm][seed] = value
            rows.append({"arm": arm, "seed": seed, "variant": "", "status": "completed", "path": str(folder),
                         **measured})
    return values, rows


def test_curves_show_each_seed_and_the_mean_with_its_band_from_epoch_1_with_the_target(runs, tmp_path):
    fig = draw(study({"kind": "curves", "column": "train_loss"}), *runs, tmp_path / "f.png", quick=False)
    ax = fig.axes[0]
    bold = [line for line in ax.get_lines() if line.get_linewidth() == 2]
    thin = [line for line in ax.get_lines() if line.get_alpha() == 0.3]
    assert len(bold) == 2 and len(thin) == 2 * len(SEEDS)
    assert list(bold[0].get_xdata()) == [1, 2, 3]  # metrics.csv's epoch 0 is epoch 1
    assert [round(y, 6) for y in bold[0].get_ydata()] == [0.49, 0.25, 0.11]  # 1 - mean val_acc over seeds
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2  # a 95% band per arm
    target = [line for line in ax.get_lines() if line.get_label().startswith("target of to_loss")]
    assert len(target) == 1 and list(target[0].get_ydata()) == [0.3, 0.3]
    assert all(float(t).is_integer() for t in visible_ticks(ax.xaxis))
    arms = looks(ax)[:2]
    assert arms[0] != arms[1]  # equal curves: told apart by line style, marker and fill
    assert legend_collisions(fig) == [] and (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_bars_on_a_linear_axis_and_points_with_intervals_on_a_log_one(runs, tmp_path):
    linear = draw(study({"kind": "bars", "measure": "acc"}), *runs, tmp_path / "f.png", quick=False).axes[0]
    assert len(linear.patches) == 2 and linear.get_yscale() == "linear"
    threshold = [c for c in linear.collections if isinstance(c, LineCollection) and c.get_label().startswith("threshold")]
    assert len(threshold) == 1 and threshold[0].get_segments()[0][0][1] == 0.5  # arm a: every seed > 0.5
    log = draw(study({"kind": "bars", "measure": "acc", "log": True}), *runs, tmp_path / "f.png", quick=False).axes[0]
    assert log.get_yscale() == "log" and not log.patches and len(log.containers) == 2  # no bars: points, intervals
    assert "geometric mean" in log.get_title()


def test_a_bars_whisker_is_the_verdicts_interval_inside_what_the_measure_can_be(runs, tmp_path):
    values, rows = runs
    values["acc"]["a"] = {0: 0.1, 1: 0.9, 2: 0.95}  # Welch's t alone reaches past 1
    ax = draw(study({"kind": "bars", "measure": "acc"}), values, rows, tmp_path / "f.png", quick=False).axes[0]
    errorbars = [c for c in ax.containers if hasattr(c, "lines")]
    whisker = errorbars[0].lines[2][0].get_segments()[0]
    summary = arm_summary(values["acc"]["a"], bounds=(0.0, 1.0))
    assert [y for _, y in whisker] == pytest.approx([summary["ci_low"], summary["ci_high"]])
    assert summary["ci_high"] <= 1.0


def test_a_log_panel_with_a_zero_keeps_the_zero_on_a_symmetric_log_axis(runs, tmp_path):
    values, rows = runs
    values["acc"]["b"] = {seed: 0.0 for seed in SEEDS}
    ax = draw(study({"kind": "bars", "measure": "acc", "log": True}), values, rows, tmp_path / "f.png", False).axes[0]
    assert ax.get_yscale() == "symlog" and "0 shown" in ax.get_ylabel()


def test_layers_are_whole_numbers_from_1_with_the_bound_a_criterion_sets(runs, tmp_path):
    fig = draw(study({"kind": "layers", "stat": "act_std", "log": True}), *runs, tmp_path / "f.png", quick=False)
    ax = fig.axes[0]
    assert visible_ticks(ax.xaxis) and all(float(t).is_integer() for t in visible_ticks(ax.xaxis))
    (bound,) = [line for line in ax.get_lines() if line.get_label().startswith("bound:")]
    assert bound.get_label() == "bound: ratio(b) > 0.5"
    assert list(bound.get_xdata()) == [1, 2, 3] and bound.get_ydata()[-1] == pytest.approx(0.5)  # from b's layer 1
    assert legend_collisions(fig) == []


def test_an_arm_with_an_inner_grid_shows_per_seed_the_variant_its_measure_took(runs, tmp_path):
    values, rows = runs
    slow = [dict(row, variant="lr=0.1", to_loss=30.0) for row in rows if row["arm"] == "a"]
    for row in slow:  # the slower variant of each seed: a curve that must not be drawn
        folder = write_run(tmp_path / "slow", f"a-seed{row['seed']}", config(seed=row["seed"]), [0.1, 0.2, 0.3])
        row["path"] = str(folder)
    fig = draw(study({"kind": "curves", "column": "train_loss", "measure": "to_loss"}), values, rows + slow,
               tmp_path / "f.png", quick=False)
    thin = [line for line in fig.axes[0].get_lines() if line.get_alpha() == 0.3]
    assert len(thin) == 2 * len(SEEDS) and all(max(line.get_ydata()) < 0.6 for line in thin)


def test_a_trials_panel_shows_every_trial_each_sweep_arm_tried(tmp_path):
    rows, values = [], {name: {"a": {}, "b": {}} for name in MEASURES}
    for arm, lrs in (("a", [1.3e-4, 2e-3, 0.05, 0.4]), ("b", [1e-4, 1e-4, 1.0, 1.0])):  # random, grid
        folder = tmp_path / arm
        folder.mkdir()
        with open(folder / "trials.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["number", "state", "status", "value", "param.optimizer.lr"])
            out.writerows([i, "COMPLETE", "completed", 1 / (i + 1), lr] for i, lr in enumerate(lrs))
        rows.append({"arm": arm, "seed": 0, "variant": "", "path": str(folder)})
    sweep = {"metric": "val_loss", "direction": "minimize", "space": {"optimizer.lr": {"log": True}}}
    spec = study({"kind": "trials", "x": "optimizer.lr", "log": True},
                 arms={"a": {"sweep": sweep}, "b": {"sweep": sweep}})
    ax = draw(spec, values, rows, tmp_path / "f.png", quick=False).axes[0]
    dots = sum(len(c.get_offsets()) for c in ax.collections)
    assert dots == 8 + 2  # every trial, and each seed's best ringed
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_ylabel().startswith("val_loss")


def drawn_by(panel: dict, name: str, measure: dict, first: str) -> bool:
    """Whether a figure panel shows measure `name`: its bars, its curve, its layer statistic, its trials."""
    kind = panel["kind"]
    if kind == "bars":
        return panel.get("measure", first) == name
    if kind == "curves":
        return measure["kind"] in ("metric", "to_target") and measure.get("column") == panel.get("column", "val_acc") \
            and not measure.get("minus")
    if kind == "layers":
        return measure["kind"] == "layer" and measure["stat"] == panel.get("stat", "act_std") \
            and int(measure.get("epoch", -1)) == int(panel.get("epoch", -1))
    if kind == "comparison":  # the comparison's tuned.png: every rerun seed per workload and contender
        return measure["kind"] == "tuned"
    return measure["kind"] == "sweep_best"


@pytest.mark.parametrize("name", study_names())
def test_every_shipped_figure_shows_what_its_verdict_compares(name):
    spec = load_study(name)
    panels, first = figure_panels(spec.figure), spec.criteria[0]["measure"]
    for criterion in spec.criteria:
        measure = criterion["measure"]
        assert any(drawn_by(p, measure, spec.measures[measure], first) for p in panels), (name, measure)
    if any(arm.sweep for arm in spec.arms):  # what each search method tried, not only its best
        assert any(p["kind"] == "trials" for p in panels), name


def test_a_single_epoch_gets_a_whisker_per_arm_and_the_tick_1(tmp_path):
    values, rows = {name: {"a": {}, "b": {}} for name in MEASURES}, []
    for arm in ("a", "b"):
        for seed in SEEDS:
            folder = write_run(tmp_path / "runs", f"{arm}-seed{seed}", config(seed=seed), [0.5 + 0.1 * seed])
            rows.append({"arm": arm, "seed": seed, "variant": "", "path": str(folder)})
    ax = draw(study({"kind": "curves", "column": "val_acc"}), values, rows, tmp_path / "f.png", quick=True).axes[0]
    legend_collisions(ax.figure)  # draws it
    assert len(ax.containers) == 2 and visible_ticks(ax.xaxis) == [1]
    assert "quick" in ax.figure.get_suptitle()


def test_a_seed_that_never_reached_the_target_is_marked_as_a_lower_bound(runs, tmp_path):
    values, rows = runs
    rows[0]["to_loss_censored"] = True  # arm a, seed 0: its budget, not a time to the target
    ax = draw(study({"kind": "bars", "measure": "to_loss", "log": True}), values, rows, tmp_path / "f.png",
              quick=False).axes[0]
    marked = [c for c in ax.collections if c.get_label().startswith("seed that never reached the target")]
    assert len(marked) == 1 and list(marked[0].get_offsets()[0]) == [0.3, 20.0]
    assert ax.get_ylabel() == "to_loss (steps to the target) (log scale)"
