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
from runner.config.compose import is_bookkeeping
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
    assert adam["ci_high"] == pytest.approx(0.93 + T_975_DF2 * std / math.sqrt(3))
    # sgd: completed runs 0.80, 0.84 -> mean 0.82, std sqrt(0.0008) = 0.028284, df 1
    assert sgd["mean"] == pytest.approx(0.82)
    assert sgd["std"] == pytest.approx(math.sqrt(0.0008))
    assert sgd["ci_high"] - sgd["mean"] == pytest.approx(T_975_DF1 * math.sqrt(0.0008) / math.sqrt(2))


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


def test_runs_table_has_config_keys_group_choices_and_summary(runs_root):
    runs = report.load([runs_root]).runs.set_index("run")
    assert runs.loc["adam-0", "optimizer"] == "adam" and runs.loc["adam-0", "optimizer.lr"] == 0.001
    assert runs.loc["adam-0", "augment"] == "none" and runs.loc["adam-0", "optimizer.betas"] == "[0.9, 0.999]"
    assert runs.loc["sgd-2", "status"] == "diverged" and runs.loc["sgd-3", "seed"] == 3
    assert runs.loc["adam-2", "best_val_acc"] == 0.97 and runs.loc["adam-2", "wall_time_s"] == 1.5


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


def test_t_quantiles_agree_with_tables_and_the_cauchy_closed_form():
    assert report.t_quantile(0.975, 1) == pytest.approx(T_975_DF1, rel=1e-6)
    assert report.t_quantile(0.975, 2) == pytest.approx(T_975_DF2, rel=1e-6)
    assert report.t_quantile(0.975, 1e6) == pytest.approx(1.959964, rel=1e-5)
    # df = 1 is the Cauchy distribution: P(T > x) = 1/2 - atan(x)/pi
    assert report.t_sf(2.0, 1) == pytest.approx(0.5 - math.atan(2.0) / math.pi, rel=1e-9)
    assert report.t_sf(0.0, 32 / 19) == pytest.approx(0.5)  # fractional df (Welch)


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
    importances, notes = report.param_importances(collection.sweeps[0])
    assert notes == [] and set(importances["param"]) == {"optimizer.lr", "model.width"}
    assert set(importances["branch"]) == {report.ALL_TRIALS} and importances["importance"].sum() == pytest.approx(1.0)


def test_importances_skipped_with_a_note(tmp_path):
    folder = make_sweep(tmp_path, trials=1)
    sweep = report.load_sweep(folder)
    assert report.param_importances(sweep) == (None, ["demo: 1 complete trial(s), importances need 2 or more"])
    sweep.meta["storage"] = str(tmp_path / "nowhere.log")
    importances, notes = report.param_importances(sweep)
    assert importances is None and "not found" in notes[0] and not (tmp_path / "nowhere.log").exists()


CONDITIONAL_SPACE = {
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    "model.width": {"type": "int", "low": 8, "high": 64},
    "lr_sgd": {"key": "optimizer.lr", "type": "float", "low": 1e-3, "high": 1.0, "log": True,
               "when": {"optimizer": ["sgd"]}},
    "lr_adam": {"key": "optimizer.lr", "type": "float", "low": 1e-5, "high": 0.1, "log": True,
                "when": {"optimizer": ["adam"]}},
}


def conditional_trials(n: int = 40) -> list:
    """sgd: the value depends on its lr only; adam: on the width only; adam is better overall."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial):
        optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
        width = trial.suggest_int("model.width", 8, 64)
        if optimizer == "sgd":
            return 0.5 - abs(math.log10(trial.suggest_float("lr_sgd", 1e-3, 1.0, log=True)) + 1.5) / 10
        trial.suggest_float("lr_adam", 1e-5, 0.1, log=True)
        return 0.8 + width / 1000

    study.optimize(objective, n_trials=n)
    return study.trials


def test_conditional_space_importances_are_computed_per_branch():
    table, notes = report.branch_importances(conditional_trials(), "maximize", ["optimizer"])
    by_branch = {b: dict(zip(part["param"], part["importance"])) for b, part in table.groupby("branch")}
    assert set(by_branch) == {report.ALL_TRIALS, "optimizer=sgd", "optimizer=adam"} and notes == []
    assert set(by_branch[report.ALL_TRIALS]) == {"optimizer", "model.width"}
    assert by_branch[report.ALL_TRIALS]["optimizer"] > 0.8  # the branches differ most
    assert set(by_branch["optimizer=sgd"]) == {"model.width", "lr_sgd"} and by_branch["optimizer=sgd"]["lr_sgd"] > 0.8
    assert set(by_branch["optimizer=adam"]) == {"model.width", "lr_adam"}
    assert by_branch["optimizer=adam"]["model.width"] > 0.8
    for part in by_branch.values():
        assert sum(part.values()) == pytest.approx(1.0)
    assert report.conditioning_params({"space": CONDITIONAL_SPACE}) == ["optimizer"]


def test_conditional_params_left_out_with_a_note_when_the_space_is_unknown():
    table, notes = report.branch_importances(conditional_trials(), "maximize", None)
    assert set(table["param"]) == {"optimizer", "model.width"}
    assert notes == ["left out lr_adam, lr_sgd: set in some trials only, and sweep.json has no space "
                     "saying which parameter they depend on"]


def test_log_scale_comes_from_the_sweep_space(tmp_path):
    sweep = report.Sweep(tmp_path, "demo", {"space": {**CONDITIONAL_SPACE, "wd": {"key": "optimizer.weight_decay",
                                                                                  "type": "float", "low": 0, "high": 0.1}}},
                         pd.DataFrame())
    assert report.log_scaled([sweep], "optimizer.lr") is True
    assert report.log_scaled([sweep], "optimizer.weight_decay") is False
    assert report.log_scaled([sweep], "model.width") is False
    assert report.log_scaled([sweep], "model.depth") is None and report.log_scaled([], "optimizer.lr") is None


# ---------------------------------------------------------------- duplicates, pooling, which epoch

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


@pytest.mark.parametrize("key, bookkeeping", [
    ("trainer.name", True), ("trainer.out_dir", True), ("trainer.progress", True), ("trainer.log_every", True),
    ("trainer.checkpoint_every_s", True), ("trainer.device", True), ("trainer.data_on_device", True),
    ("diagnostics.every", True), ("trainer.precision", False), ("trainer.seed", False), ("trainer.epochs", False),
    ("optimizer.lr", False)])
def test_bookkeeping_keys_do_not_change_what_is_learned(key, bookkeeping):
    assert is_bookkeeping(key) == bookkeeping


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


def test_branches_too_small_to_rank_are_named_in_one_note():
    trials = conditional_trials(40)
    adam = [t for t in trials if t.params["optimizer"] == "adam"]
    sgd = [t for t in trials if t.params["optimizer"] == "sgd"]
    table, notes = report.branch_importances(adam[:1] + sgd, "maximize", ["optimizer"])
    assert set(table["branch"]) == {report.ALL_TRIALS, "optimizer=sgd"}
    assert notes == ["no importances for optimizer=adam: fewer than 2 complete trials"]
    # two trials with the same values: nothing varies, nothing to rank (one parameter alone is 1 by definition)
    table, notes = report.branch_importances(sgd[:1] * 2, "maximize", None)
    assert table.empty and notes == ["no importances for all trials: fewer than 2 parameters vary"]
