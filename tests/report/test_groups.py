"""Groups, replicates vs duplicates, which metric at which epoch, on run folders whose numbers are known.

Expected values are worked out by hand in the comments (t quantiles from a t table)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from testkit import T_975_DF1, T_975_DF2, config, write_run

from optlab import report
from optlab.errors import ConfigError


def aggregate(root: Path, by: list[str] | None = None, metric: str = "val_acc", target=None, direction="auto",
              at: str | None = "best"):
    """The group table; the hand computations below use each run's best epoch (--at best)."""
    collection = report.load([root])
    m = report.resolve_metric(metric, collection, direction, at if metric in collection.curves else None)
    keys = by if by is not None else report.differing_keys(collection.runs, collection.config_keys)
    return report.aggregate(collection, keys, m, target).set_index("group"), keys


def test_group_statistics_match_hand_computation(runs_root):
    table, keys = aggregate(runs_root, ["optimizer"])
    adam, sgd = table.loc["optimizer=adam"], table.loc["optimizer=sgd"]
    # adam: mean (0.90+0.92+0.97)/3 = 0.93; deviations -0.03,-0.01,+0.04 -> var 0.0026/2 = 0.0013
    std = math.sqrt(0.0013)
    assert adam["mean"] == pytest.approx(0.93)
    assert adam["std"] == pytest.approx(std)
    assert adam["sem"] == pytest.approx(std / math.sqrt(3))
    assert adam["ci_low"] == pytest.approx(0.93 - T_975_DF2 * std / math.sqrt(3))
    assert 0.93 + T_975_DF2 * std / math.sqrt(3) > 1 and adam["ci_high"] == 1.0  # cut to val_acc's range
    # sgd: completed runs 0.80, 0.84 -> mean 0.82, std sqrt(0.0008) = 0.028284, df 1
    assert sgd["mean"] == pytest.approx(0.82)
    assert sgd["std"] == pytest.approx(math.sqrt(0.0008))
    assert sgd["mean"] - sgd["ci_low"] == pytest.approx(T_975_DF1 * math.sqrt(0.0008) / math.sqrt(2))
    assert sgd["ci_high"] == 1.0  # 0.82 + 0.254 cut to val_acc's range


def test_status_counts_best_worst_seed_and_rank(runs_root):
    table, _ = aggregate(runs_root, ["optimizer"])
    sgd, adam = table.loc["optimizer=sgd"], table.loc["optimizer=adam"]
    assert (sgd["runs"], sgd["n"], sgd["completed"], sgd["diverged"], sgd["pruned"], sgd["failed"]) == (4, 2, 2, 1, 1, 0)
    assert (adam["runs"], adam["n"], adam["diverged"], adam["duplicates"]) == (3, 3, 0, 0)
    assert (adam["best_seed"], adam["best"], adam["worst_seed"], adam["worst"]) == (2, 0.97, 0, 0.90)
    assert (adam["rank"], sgd["rank"]) == (1, 2)
    flipped, _ = aggregate(runs_root, ["optimizer"], direction="min")
    assert list(flipped.index) == ["optimizer=sgd", "optimizer=adam"]
    assert flipped.loc["optimizer=adam", "best_seed"] == 0 and flipped.loc["optimizer=adam", "best"] == 0.50


def test_epochs_to_target_counts_runs_that_never_reach_it(runs_root):
    table, _ = aggregate(runs_root, ["optimizer"], target=0.9)
    adam, sgd = table.loc["optimizer=adam"], table.loc["optimizer=sgd"]
    # adam reaches 0.9 after epochs 2, 3 and 1 (index + 1): mean 2; no sgd run reaches it
    assert (adam["target_reached"], adam["target_missed"], adam["epochs_to_target"]) == (3, 0, 2.0)
    assert (sgd["target_reached"], sgd["target_missed"]) == (0, 4) and math.isnan(sgd["epochs_to_target"])
    table, _ = aggregate(runs_root, ["optimizer"], target=0.82)
    # sgd-1 reaches 0.84 at epoch index 1 -> 2 epochs; the other three never do
    assert (table.loc["optimizer=sgd", "target_reached"], table.loc["optimizer=sgd", "epochs_to_target"]) == (1, 2.0)


def test_default_grouping_is_the_keys_that_differ_without_seed_or_followers(runs_root, tmp_path):
    _, keys = aggregate(runs_root)
    assert keys == ["optimizer"]  # lr, momentum, betas, seed, name all follow or are bookkeeping
    write_run(runs_root, "adam-lr", config("adam", lr=0.01, seed=0), [0.5, 0.6, 0.7])
    _, keys = aggregate(runs_root)
    assert keys == ["optimizer", "optimizer.lr"]
    solo = tmp_path / "solo"
    write_run(solo, "a", config(seed=0), [0.5])
    write_run(solo, "b", config(seed=1), [0.7])
    table, keys = aggregate(solo)
    assert keys == [] and list(table.index) == [report.ALL] and table.loc[report.ALL, "mean"] == pytest.approx(0.6)


def test_metric_from_curve_summary_number_and_unknown(runs_root):
    collection = report.load([runs_root])
    loss = report.resolve_metric("val_loss", collection, at="best")
    assert not loss.maximize and loss.curve == "val_loss"
    assert collection.runs.set_index("run").loc["adam-2", loss.column] == pytest.approx(0.03)  # 1 - 0.97
    final = report.resolve_metric("final_val_acc", collection)
    assert final.column == "final_val_acc" and final.curve == "val_acc" and final.maximize
    with pytest.raises(ConfigError, match="choose from"):
        report.resolve_metric("accuracy", collection)
    with pytest.raises(ConfigError, match="optimizer.lrr"):
        report.check_keys(["optimizer.lrr"], collection)


def test_compare_two_folders_side_by_side(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for seed, value in enumerate([0.90, 0.92, 0.94]):
        write_run(a, f"r{seed}", config(seed=seed), [value])
    for seed, value in enumerate([0.80, 0.86]):
        write_run(b, f"r{seed}", config(seed=seed), [value])
    collection = report.load([a, b])
    metric = report.resolve_metric("val_acc", collection)
    row = report.compare(collection, (str(a), str(b)), [], metric).iloc[0]
    assert (row["A_n"], row["B_n"]) == (3, 2)
    assert row["A_mean"] == pytest.approx(0.92) and row["B_mean"] == pytest.approx(0.83)
    assert row["diff"] == pytest.approx(0.09) and row["diff_ci_low"] < 0.09 < row["diff_ci_high"]


def test_same_config_and_seed_are_one_replicate_with_their_mean(tmp_path):
    root = tmp_path / "runs"
    for copy, (last, bookkeeping) in enumerate([(0.90, {}), (0.90, {"name": "again", "out_dir": "/elsewhere"}),
                                                (0.96, {"log_every": 7, "device": "cuda", "progress": False}),
                                                (0.90, {"checkpoint_every_s": 0, "eval_batch_size": 10})]):
        cfg = config(seed=0)
        cfg["trainer"].update(bookkeeping)
        write_run(root, f"seed0-copy{copy}", cfg, [0.5, last])
    write_run(root, "seed1", config(seed=1), [0.5, 0.80])
    table, _ = aggregate(root, [], at="final")
    row = table.loc[report.ALL]
    # seed 0: four folders, one replicate worth (0.90 + 0.90 + 0.96 + 0.90) / 4 = 0.915; seed 1: 0.80
    assert (row["n"], row["runs"], row["duplicates"]) == (2, 5, 3)
    assert row["mean"] == pytest.approx((0.915 + 0.80) / 2)
    assert row["std"] == pytest.approx(math.sqrt(2 * 0.0575 ** 2))
    assert (row["best_seed"], row["best"]) == (0, pytest.approx(0.915))


def test_four_copies_of_one_seed_have_no_interval(tmp_path):
    for copy in range(4):
        write_run(tmp_path, f"copy{copy}", config(seed=0), [0.9])
    row = aggregate(tmp_path, [])[0].loc[report.ALL]
    assert (row["n"], row["runs"], row["duplicates"]) == (1, 4, 3)
    assert math.isnan(row["std"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])


def test_a_key_that_changes_training_makes_a_replicate_not_a_duplicate(tmp_path):
    plain, half = config(seed=0), config(seed=0)
    plain["trainer"]["precision"], half["trainer"]["precision"] = "32", "bf16"
    write_run(tmp_path, "fp32", plain, [0.9])
    write_run(tmp_path, "bf16", half, [0.8])
    table, keys = aggregate(tmp_path)
    assert keys == ["trainer.precision"] and table["n"].tolist() == [1, 1]
    pooled, _ = aggregate(tmp_path, [])
    assert (pooled.loc[report.ALL, "n"], pooled.loc[report.ALL, "duplicates"]) == (2, 0)
    assert pooled.loc[report.ALL, "varies"] == "trainer.precision"


def test_pooling_by_a_key_lists_the_other_keys_that_vary(runs_root):
    cfg = config("adam", seed=5)
    cfg["data"]["name"], cfg["trainer"]["epochs"] = "moons", 10
    write_run(runs_root, "adam-moons", cfg, [0.7, 0.8])
    table, _ = aggregate(runs_root, ["optimizer"])
    assert table.loc["optimizer=adam", "varies"] == "data,trainer.epochs"  # data.name follows data
    assert table.loc["optimizer=sgd", "varies"] == ""
    # grouped by every key that differs, nothing is pooled
    collection = report.load([runs_root])
    keys = report.differing_keys(collection.runs, collection.config_keys)
    assert set(report.pooled_keys(collection.runs, collection.config_keys, keys)) == {""}


def test_final_epoch_by_default_best_on_request(runs_root):
    collection = report.load([runs_root])
    final = report.resolve_metric("val_acc", collection)
    assert (final.at, final.column, final.label) == ("final", "final_val_acc", "val_acc (validation, final epoch)")
    table = report.aggregate(collection, ["optimizer"], final).set_index("group")
    # adam's last epochs: 0.85, 0.92, 0.96 -> 0.91 (best epochs: 0.93); sgd's completed: 0.80, 0.83
    assert table.loc["optimizer=adam", "mean"] == pytest.approx(0.91)
    assert table.loc["optimizer=sgd", "mean"] == pytest.approx(0.815)
    assert (table.loc["optimizer=adam", "metric"], table.loc["optimizer=adam", "at"]) == ("val_acc", "final")
    best = report.resolve_metric("val_acc", collection, at="best")
    assert best.label == "val_acc (validation, best epoch)"
    table = report.aggregate(collection, ["optimizer"], best).set_index("group")
    assert table.loc["optimizer=adam", "mean"] == pytest.approx(0.93)


def test_final_value_comes_from_the_curve_when_the_summary_lacks_it(tmp_path):
    folder = write_run(tmp_path, "r", config(), [0.5, 0.9, 0.7])
    summary = json.loads((folder / "summary.json").read_text())
    del summary["final_val_acc"]
    (folder / "summary.json").write_text(json.dumps(summary))
    collection = report.load([tmp_path])
    metric = report.resolve_metric("val_acc", collection)
    assert collection.runs[metric.column].tolist() == [0.7]


def test_summary_numbers_name_their_epoch_and_refuse_another(runs_root):
    collection = report.load([runs_root])
    assert report.resolve_metric("best_val_acc", collection).at == "best"
    assert report.resolve_metric("wall_time_s", collection).label == "wall_time_s"
    with pytest.raises(ConfigError, match="--metric val_acc --at final"):
        report.resolve_metric("best_val_acc", collection, at="final")


def test_test_split_number_is_shown_beside_the_validation_one(runs_root):
    # test_acc as a later trainer writes it: measured on the best-validation epoch's weights
    for name, test_acc in {"adam-0": 0.88, "adam-1": 0.90, "adam-2": 0.95, "sgd-0": 0.78}.items():
        path = runs_root / name / "summary.json"
        summary = json.loads(path.read_text())
        path.write_text(json.dumps({**summary, "test_acc": test_acc, "test_loss": 1 - test_acc, "best_epoch": 1}))
    collection = report.load([runs_root])
    metric = report.resolve_metric("val_acc", collection)
    assert metric.test_column == "test_acc"
    table = report.aggregate(collection, ["optimizer"], metric).set_index("group")
    adam = table.loc["optimizer=adam"]
    # 0.88, 0.90, 0.95: mean 0.91, deviations -0.03, -0.01, 0.04 -> std sqrt(0.0013)
    assert adam["test_mean"] == pytest.approx(0.91) and adam["test_n"] == 3
    assert adam["test_ci_high"] == pytest.approx(0.91 + T_975_DF2 * math.sqrt(0.0013 / 3))
    assert table.loc["optimizer=sgd", "test_n"] == 1  # sgd-1 has no test number
    assert report.resolve_metric("val_loss", collection).test_column == "test_loss"
    assert report.resolve_metric("train_loss", collection).test_column is None


def test_no_test_columns_without_a_test_split(runs_root):
    collection = report.load([runs_root])
    table = report.aggregate(collection, ["optimizer"], report.resolve_metric("val_acc", collection))
    assert not [c for c in table.columns if c.startswith("test_")]


def test_epochs_to_target_counts_each_replicate_once(tmp_path):
    for copy in range(3):
        write_run(tmp_path, f"seed0-{copy}", config(seed=0), [0.5, 0.95])
    write_run(tmp_path, "seed1", config(seed=1), [0.95, 0.96])
    write_run(tmp_path, "seed2", config(seed=2), [0.5, 0.6])
    row = aggregate(tmp_path, [], target=0.9)[0].loc[report.ALL]
    # replicates: seed 0 after 2 epochs, seed 1 after 1, seed 2 never -> mean 1.5, not (2+2+2+1)/4
    assert (row["target_reached"], row["target_missed"], row["epochs_to_target"]) == (2, 1, 1.5)


def test_learning_curves_average_duplicates_before_the_band(tmp_path):
    for copy in range(3):
        write_run(tmp_path, f"seed0-{copy}", config(seed=0), [0.5, 0.9])
    write_run(tmp_path, "seed1", config(seed=1), [0.7, 0.8])
    curves = report.group_curves(report.load([tmp_path]), [], "val_acc")
    last = curves[curves["epoch"] == 1].iloc[0]
    assert (last["n"], last["mean"], last["min"], last["max"]) == (2, pytest.approx(0.85), 0.8, 0.9)


def test_group_curves_give_the_means_interval_where_a_group_has_two_seeds(runs_root):
    collection = report.load([runs_root])
    curves = report.group_curves(collection, ["optimizer"], "val_acc")
    adam = curves[(curves["group"] == "optimizer=adam") & (curves["epoch"] == 1)].iloc[0]
    expected = report.describe([0.90, 0.80, 0.97])
    assert adam["n"] == 3 and (adam["ci_low"], adam["ci_high"]) == pytest.approx((expected["ci_low"], expected["ci_high"]))
    alone = report.group_curves(collection, ["optimizer", "trainer.seed"], "val_acc")
    assert (alone["n"] <= 1).all() and alone["ci_low"].isna().all() and alone["ci_high"].isna().all()
def _with(cfg: dict, **dotted) -> dict:
    """cfg with dotted keys set (regularize.clip_norm=0.01)."""
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return cfg


def test_a_key_null_in_some_runs_and_set_in_others_splits_the_groups(tmp_path):
    # two seeds without clipping, two with clip_norm 0.01 (val_acc about 0.90 vs 0.09)
    for seed, acc in enumerate([0.89, 0.90]):
        write_run(tmp_path, f"free-{seed}", _with(config(seed=seed), **{"regularize.clip_norm": None}), [acc])
    for seed, acc in enumerate([0.06, 0.11]):
        write_run(tmp_path, f"clip-{seed}", _with(config(seed=seed), **{"regularize.clip_norm": 0.01}), [acc])
    table, keys = aggregate(tmp_path)
    assert keys == ["regularize.clip_norm"]
    assert list(table.index) == ["regularize.clip_norm=null", "regularize.clip_norm=0.01"]
    assert table["n"].tolist() == [2, 2] and table["varies"].tolist() == ["", ""]
    assert table.loc["regularize.clip_norm=null", "mean"] == pytest.approx(0.895)
    pooled, _ = aggregate(tmp_path, [])
    assert pooled.loc[report.ALL, "varies"] == "regularize.clip_norm"  # said out loud when pooled
    assert (pooled.loc[report.ALL, "n"], pooled.loc[report.ALL, "duplicates"]) == (4, 0)


def test_scratch_transfer_and_class_subset_of_one_seed_are_three_configurations(tmp_path):
    write_run(tmp_path, "scratch", config(seed=0), [0.90])
    write_run(tmp_path, "from", _with(config(seed=0), **{"init.from": "/runs/src"}), [0.97])
    write_run(tmp_path, "subset", _with(config(seed=0), **{"data.keep_classes": [0, 1, 2, 3, 4]}), [0.99])
    table, keys = aggregate(tmp_path)
    assert keys == ["data.keep_classes", "init.from"]
    assert len(table) == 3 and table["n"].tolist() == [1, 1, 1]
    assert "data.keep_classes=null, init.from=null" in table.index


def test_a_key_missing_from_an_older_run_reads_as_its_default(tmp_path):
    older = config(seed=0)  # written before regularize and optimizer.lr_scale existed
    write_run(tmp_path, "older", older, [0.90])
    write_run(tmp_path, "newer", _with(config(seed=0), **{"regularize.clip_norm": None, "regularize.l2": 0.0,
                                                          "optimizer.lr_scale": None}), [0.90])
    table, keys = aggregate(tmp_path)
    assert keys == [] and (table.loc[report.ALL, "n"], table.loc[report.ALL, "duplicates"]) == (1, 1)
    write_run(tmp_path, "scaled", _with(config(seed=0), **{"optimizer.lr_scale": {"head": 10}}), [0.95])
    write_run(tmp_path, "l2", _with(config(seed=0), **{"regularize.l2": 0.001}), [0.92])
    table, keys = aggregate(tmp_path)
    assert sorted(keys) == ["optimizer.lr_scale.head", "regularize.l2"] and table["n"].tolist() == [1, 1, 1]
    plain = [g for g in table.index if "optimizer.lr_scale.head=null" in g and "regularize.l2=0," in f"{g},"]
    assert len(plain) == 1 and table.loc[plain[0], "duplicates"] == 1  # older and newer: one replicate
