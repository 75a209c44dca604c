"""runner.report on hand-written run and sweep folders whose numbers are known.

Expected values are worked out by hand in the comments (t quantiles from a t table)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from runner import report
from runner.errors import ConfigError

T_975_DF1, T_975_DF2 = 12.706204736, 4.302652730  # Student's t, two-sided 95%, from a t table
METRIC_HEADER = "epoch,step,lr,batch_size,train_loss,train_acc,val_loss,val_acc,grad_norm,epoch_time_s,samples_per_s\n"


def config(optimizer: str = "adam", lr: float = 0.001, seed: int = 0, norm: str = "none") -> dict:
    opt = {"name": optimizer, "lr": lr, **({"momentum": 0.9} if optimizer == "sgd" else {"betas": [0.9, 0.999]})}
    return {"data": {"name": "digits"}, "model": {"name": "mlp", "width": 16}, "norm": {"name": norm},
            "optimizer": opt, "augment": {"none": {}},
            "trainer": {"epochs": 3, "seed": seed, "name": f"{optimizer}-{seed}", "out_dir": "/somewhere"}}


def write_run(root: Path, name: str, cfg: dict, val_accs: list[float], status: str = "completed") -> Path:
    """A run folder as optlab train writes it: config.yaml, metrics.csv, summary.json."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [f"{e},{10 * (e + 1)},{cfg['optimizer']['lr']},64,{1 - a},{a},{1 - a},{a},1.0,0.1,1000\n"
            for e, a in enumerate(val_accs)]
    (folder / "metrics.csv").write_text(METRIC_HEADER + "".join(rows))
    finite = [a for a in val_accs if math.isfinite(a)]
    summary = {"status": status, "run_dir": str(folder), "seed": cfg["trainer"]["seed"], "device": "cpu",
               "epochs_done": len(val_accs), "best_val_acc": max(finite) if finite else None,
               "final_val_acc": val_accs[-1] if finite else None, "wall_time_s": 1.5}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def runs_root(tmp_path) -> Path:
    """adam: 3 completed seeds (best 0.90, 0.92, 0.97); sgd: 2 completed (0.80, 0.84), 1 diverged, 1 pruned."""
    root = tmp_path / "runs"
    write_run(root, "adam-0", config("adam", seed=0), [0.50, 0.90, 0.85])
    write_run(root, "adam-1", config("adam", seed=1), [0.60, 0.80, 0.92])
    write_run(root, "adam-2", config("adam", seed=2), [0.95, 0.97, 0.96])
    write_run(root, "sgd-0", config("sgd", 0.1, seed=0), [0.40, 0.70, 0.80])
    write_run(root, "sgd-1", config("sgd", 0.1, seed=1), [0.50, 0.84, 0.83])
    write_run(root, "sgd-2", config("sgd", 0.1, seed=2), [0.30, math.nan], status="diverged")
    write_run(root, "sgd-3", config("sgd", 0.1, seed=3), [0.20], status="pruned")
    return root


def aggregate(root: Path, by: list[str] | None = None, metric: str = "val_acc", target=None, direction="auto"):
    collection = report.load([root])
    m = report.resolve_metric(metric, collection, direction)
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
    assert adam["ci_high"] == pytest.approx(0.93 + T_975_DF2 * std / math.sqrt(3))
    # sgd: completed runs 0.80, 0.84 -> mean 0.82, std sqrt(0.0008) = 0.028284, df 1
    assert sgd["mean"] == pytest.approx(0.82)
    assert sgd["std"] == pytest.approx(math.sqrt(0.0008))
    assert sgd["ci_high"] - sgd["mean"] == pytest.approx(T_975_DF1 * math.sqrt(0.0008) / math.sqrt(2))


def test_status_counts_best_worst_seed_and_rank(runs_root):
    table, _ = aggregate(runs_root, ["optimizer"])
    sgd, adam = table.loc["optimizer=sgd"], table.loc["optimizer=adam"]
    assert (sgd["n_runs"], sgd["n_used"], sgd["completed"], sgd["diverged"], sgd["pruned"], sgd["failed"]) == (4, 2, 2, 1, 1, 0)
    assert (adam["n_runs"], adam["n_used"], adam["diverged"]) == (3, 3, 0)
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


def test_runs_table_has_config_keys_group_choices_and_summary(runs_root):
    runs = report.load([runs_root]).runs.set_index("run")
    assert runs.loc["adam-0", "optimizer"] == "adam" and runs.loc["adam-0", "optimizer.lr"] == 0.001
    assert runs.loc["adam-0", "augment"] == "none" and runs.loc["adam-0", "optimizer.betas"] == "[0.9, 0.999]"
    assert runs.loc["sgd-2", "status"] == "diverged" and runs.loc["sgd-3", "seed"] == 3
    assert runs.loc["adam-2", "best_val_acc"] == 0.97 and runs.loc["adam-2", "wall_time_s"] == 1.5


def test_metric_from_curve_summary_number_and_unknown(runs_root):
    collection = report.load([runs_root])
    loss = report.resolve_metric("val_loss", collection)
    assert not loss.maximize and loss.curve == "val_loss"
    assert collection.runs.set_index("run").loc["adam-2", loss.column] == pytest.approx(0.03)  # 1 - 0.97
    final = report.resolve_metric("final_val_acc", collection)
    assert final.column == "final_val_acc" and final.curve == "val_acc" and final.maximize
    with pytest.raises(ConfigError, match="choose from"):
        report.resolve_metric("accuracy", collection)
    with pytest.raises(ConfigError, match="optimizer.lrr"):
        report.check_keys(["optimizer.lrr"], collection)


def test_malformed_and_half_written_folders_are_skipped_with_reasons(runs_root):
    half = runs_root / "half"
    half.mkdir()
    (half / "config.yaml").write_text(yaml.safe_dump(config()))
    bad_csv = write_run(runs_root, "bad-csv", config(seed=7), [0.5])
    (bad_csv / "metrics.csv").write_text(METRIC_HEADER + "0,1,2\n")
    bad_number = write_run(runs_root, "bad-number", config(seed=8), [0.5])
    (bad_number / "metrics.csv").write_text(METRIC_HEADER + "0,1,0.1,64,x,0.5,0.5,0.5,1,1,1\n")
    bad_json = write_run(runs_root, "bad-json", config(seed=9), [0.5])
    (bad_json / "summary.json").write_text('{"status": "compl')
    foreign = runs_root / "foreign"
    foreign.mkdir()
    (foreign / "metrics.csv").write_text("a,b\n1,2\n")
    torn = write_run(runs_root, "torn", config(seed=10), [0.5, 0.6])
    with open(torn / "metrics.csv", "a") as f:
        f.write("2,30,0.001,64,0.3")  # the run was writing this line
    collection = report.load([runs_root, runs_root / "missing"])
    reasons = {s.path.name: s.reason for s in collection.skipped}
    assert "missing summary.json" in reasons["half"]
    assert "line 2 has 3 fields, expected 11" in reasons["bad-csv"]
    assert "'x' is not a number" in reasons["bad-number"]
    assert "not valid JSON" in reasons["bad-json"]
    assert "missing config.yaml" in reasons["foreign"]
    assert reasons["missing"] == "no such folder"
    assert len(collection.runs) == 8  # the 7 good runs and the torn one
    assert any("torn" in note for note in collection.notes)
    assert collection.curves[collection.curves["run_dir"] == str(torn)]["epoch"].tolist() == [0, 1]


def test_t_quantile_fallback_agrees_with_tables():
    assert report._t_quantile_bisect(0.975, 1) == pytest.approx(T_975_DF1, rel=1e-6)
    assert report._t_quantile_bisect(0.975, 2) == pytest.approx(T_975_DF2, rel=1e-6)
    assert report._t_quantile_bisect(0.975, 1e6) == pytest.approx(1.959964, rel=1e-5)
    assert report._t_cdf(0.0, 3.3) == pytest.approx(0.5)
    # df = 1 is the Cauchy distribution: CDF(x) = 1/2 + atan(x)/pi
    assert report._t_cdf(2.0, 1) == pytest.approx(0.5 + math.atan(2.0) / math.pi, rel=1e-9)
    assert report.t_quantile(0.975, 2) == pytest.approx(T_975_DF2, rel=1e-6)
    assert report.t_sf(2.0, 1) == pytest.approx(0.5 - math.atan(2.0) / math.pi, rel=1e-9)
    # fractional df (Welch): the fallback and the library agree
    assert 1 - report._t_cdf(1.3, 32 / 19) == pytest.approx(report.t_sf(1.3, 32 / 19), rel=1e-9)
    assert report._t_quantile_bisect(0.975, 32 / 19) == pytest.approx(report.t_quantile(0.975, 32 / 19), rel=1e-7)


def test_welch_difference_and_interval():
    a = report.describe(pd.Series([1.0, 2.0, 3.0]))  # mean 2, var 1
    b = report.describe(pd.Series([4.0, 6.0]))       # mean 5, var 2
    out = report.welch(a, b)
    # se^2 = 1/3 + 2/2 = 4/3; df = (4/3)^2 / ((1/3)^2/2 + 1^2/1) = (16/9) / (19/18) = 32/19
    df = 32 / 19
    half = report.t_quantile(0.975, df) * math.sqrt(4 / 3)
    assert out["diff"] == -3.0 and out["df"] == pytest.approx(df)
    assert (out["diff_ci_low"], out["diff_ci_high"]) == (pytest.approx(-3 - half), pytest.approx(-3 + half))
    assert 0 < out["p_value"] < 1
    one = report.describe(pd.Series([1.0]))
    assert math.isnan(report.welch(one, b)["diff_ci_low"])


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


# ---------------------------------------------------------------- sweeps

def make_sweep(root: Path, trials: int = 6, storage_kind: str = "journal") -> Path:
    """A sweep folder per the contract: a real Optuna study plus trials.csv, sweep.json, runs/."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = root / "sweeps" / "demo"
    folder.mkdir(parents=True)
    if storage_kind == "journal":
        url, storage = str(folder / "study.log"), JournalStorage(JournalFileBackend(str(folder / "study.log")))
    else:
        url = storage = f"sqlite:///{folder / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="demo", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: -(math.log10(t.suggest_float("optimizer.lr", 1e-4, 1, log=True)) + 2) ** 2
                   + 0.01 * t.suggest_int("model.width", 8, 64), n_trials=trials)
    rows = []
    for t in study.trials:
        run = write_run(folder / "runs", f"trial{t.number}", config(lr=t.params["optimizer.lr"], seed=0), [0.5])
        rows.append({"number": t.number, "state": t.state.name, "status": "completed", "value": t.value,
                     "value_seed0": t.value, "duration_s": 1.0, "param.optimizer.lr": t.params["optimizer.lr"],
                     "param.model.width": t.params["model.width"], "run_dirs": str(run), "error": ""})
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    (folder / "sweep.json").write_text(json.dumps({"study": "demo", "storage": url, "metric": "val_acc",
                                                   "direction": "maximize", "trials": trials}))
    return folder


def test_best_so_far_keeps_only_complete_trials_in_order():
    trials = pd.DataFrame({"number": [3, 0, 1, 2, 4], "state": ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "FAIL"],
                           "value": [0.8, 0.5, 0.7, 0.6, None]})
    out = report.best_so_far(trials, maximize=True)
    assert out["number"].tolist() == [0, 2, 3] and out["best"].tolist() == [0.5, 0.6, 0.8]
    assert report.best_so_far(trials, maximize=False)["best"].tolist() == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("storage_kind", ["journal", "sqlite"])
def test_sweep_folder_tags_runs_and_gives_importances(tmp_path, storage_kind):
    folder = make_sweep(tmp_path, storage_kind=storage_kind)
    collection = report.load([folder])
    assert len(collection.sweeps) == 1 and len(collection.runs) == 6
    assert set(collection.runs["sweep"]) == {"demo"} and sorted(collection.runs["trial"]) == [0, 1, 2, 3, 4, 5]
    importances, note = report.param_importances(collection.sweeps[0])
    assert note is None and set(importances.index) == {"optimizer.lr", "model.width"}
    assert importances.sum() == pytest.approx(1.0)


def test_importances_skipped_with_a_note(tmp_path):
    folder = make_sweep(tmp_path, trials=1)
    sweep = report.load_sweep(folder)
    assert report.param_importances(sweep) == (None, "demo: 1 complete trial(s), importances need 2 or more")
    sweep.meta["storage"] = str(tmp_path / "nowhere.log")
    importances, note = report.param_importances(sweep)
    assert importances is None and "not found" in note and not (tmp_path / "nowhere.log").exists()
