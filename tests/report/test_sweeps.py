"""Sweeps in reports: best so far, parameter importances per branch of a conditional space, log-scaled keys."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from testkit import make_generated_sweep, make_sweep

from optlab import report


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


def test_intermediate_values_are_each_trials_reports_by_state(tmp_path):
    sweep = report.load_sweep(make_generated_sweep(tmp_path, trials=5, epochs=3))
    values, notes = report.intermediate_values(sweep)
    assert notes == []
    steps = values.groupby("number")["step"].apply(list).to_dict()
    assert steps == {0: [0, 1, 2], 1: [0, 1, 2], 2: [0, 1, 2], 3: [0, 1, 2], 4: [0]}  # trial 4 pruned after one
    assert values.loc[values["number"] == 4, "state"].tolist() == ["PRUNED"]


def test_importances_are_fitted_once_for_the_same_complete_trials(tmp_path, monkeypatch):
    from optlab.report import sweeps

    sweep = report.load_sweep(make_generated_sweep(tmp_path, trials=6))
    fits = []
    fit = sweeps.branch_importances
    monkeypatch.setattr(sweeps, "branch_importances", lambda *a: fits.append(1) or fit(*a))
    first, _ = report.param_importances(sweep)
    second, _ = report.param_importances(sweep)
    assert len(fits) == 1 and second is first
