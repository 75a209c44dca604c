"""A study is what its fingerprint says; its budget grows by --extend alone; samplers and pruners; both storages."""
from __future__ import annotations

import json
import math

import optuna
import pytest
from testkit import finished, read_rows, study_of, sweep_folder, write_sweep

from optlab.cli.app import main
from optlab.sweep.space import suggest
from optlab.sweep.spec import spec_from_dict


def test_a_rerun_with_a_changed_base_override_exits_2_naming_the_key(tmp_path, capsys, storage_url):
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path), "--storage", storage_url, "trainer.epochs=1"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(path), "--storage", storage_url, "--trials", "2", "trainer.epochs=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "base trainer.epochs 1 -> 2" in err and "--study" in err and "--extend" in err
    assert finished(study_of(tmp_path, url=storage_url)) == 1
    assert json.loads((tmp_path / "outputs" / "sweeps" / "tiny" / "sweep.json").read_text())["trials"] == 1


@pytest.mark.parametrize("change", [{"metric": "val_loss"}, {"at": "final"}, {"seeds": 2}, {"sampler": "tpe"},
                                    {"space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.9}}}])
def test_a_rerun_that_changes_what_a_trial_is_is_refused(tmp_path, capsys, change):
    assert main(["sweep", str(write_sweep(tmp_path, trials=1))]) == 0
    capsys.readouterr()
    assert main(["sweep", str(write_sweep(tmp_path, trials=1, **change))]) == 2
    assert "was created with other settings" in capsys.readouterr().err


def test_a_study_recorded_before_at_existed_valued_runs_at_their_best_epoch(tmp_path, capsys):
    from optlab.sweep.study import FINGERPRINT_ATTR

    assert main(["sweep", str(write_sweep(tmp_path, trials=1))]) == 0
    study = study_of(tmp_path)
    recorded = {k: v for k, v in study.user_attrs[FINGERPRINT_ATTR].items() if k != "at"}
    study.set_user_attr(FINGERPRINT_ATTR, recorded)  # as an older optlab wrote it
    assert main(["sweep", str(write_sweep(tmp_path, trials=2))]) == 0  # at: best by default, the same
    assert finished(study_of(tmp_path)) == 2
    assert main(["sweep", str(write_sweep(tmp_path, trials=3, at="final"))]) == 2
    assert 'at "best" -> "final"' in capsys.readouterr().err


def test_budget_workers_and_timeout_may_change_and_extend_adds_trials(tmp_path, capsys, storage_url):
    path, storage = write_sweep(tmp_path, trials=1), ["--storage", storage_url]
    assert main(["sweep", str(path), *storage]) == 0
    assert main(["sweep", str(path), *storage, "--trials", "2", "--timeout", "600", "--jobs", "1"]) == 0
    assert finished(study_of(tmp_path, url=storage_url)) == 2
    assert main(["sweep", str(path), *storage, "--extend", "1"]) == 0
    assert finished(study_of(tmp_path, url=storage_url)) == 3
    assert json.loads((tmp_path / "outputs" / "sweeps" / "tiny" / "sweep.json").read_text())["trials"] == 3


def test_extend_on_a_study_that_never_ran_exits_2(tmp_path, capsys):
    assert main(["sweep", str(write_sweep(tmp_path)), "--extend", "2"]) == 2
    assert "no budget to extend" in capsys.readouterr().err


def test_a_worker_joining_a_shared_study_with_other_settings_is_refused(tmp_path, capsys, storage_url):
    url, study = storage_url, "shared"  # two folders, as two machines would have
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = write_sweep(tmp_path / "a", trials=1)
    assert main(["sweep", str(first), "--storage", url, "--study", study]) == 0
    capsys.readouterr()
    other = write_sweep(tmp_path / "b", trials=2)
    assert main(["sweep", str(other), "--storage", url, "--study", study, "model.width=32"]) == 2
    assert "base model.width 16 -> 32" in capsys.readouterr().err
    assert finished(optuna.load_study(study_name=study, storage=url)) == 1


def test_the_study_carries_its_metric_name_and_sweep_file(tmp_path, storage_url):
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path), "--storage", storage_url]) == 0
    study = study_of(tmp_path, url=storage_url)
    assert study.metric_names == ["val_acc"]
    assert study.user_attrs["optlab.sweep"] == path.read_text()


def test_rerun_continues_to_the_budget_instead_of_adding_to_it(tmp_path, capsys, monkeypatch, storage_url):
    monkeypatch.chdir(tmp_path)
    path, storage = write_sweep(tmp_path, seeds=2), ["--storage", storage_url]
    assert main(["sweep", str(path), *storage, "--trials", "1"]) == 0
    assert main(["sweep", str(path), *storage, "--trials", "1"]) == 0
    assert len(read_rows(sweep_folder(tmp_path))) == 1
    assert main(["sweep", str(path), *storage, "--trials", "2"]) == 0
    rows = read_rows(sweep_folder(tmp_path))
    assert [int(r["number"]) for r in rows] == [0, 1]
    for r in rows:
        assert len(r["run_dirs"].split(";")) == 2  # one run folder per seed
        assert float(r["value"]) == pytest.approx((float(r["value_seed0"]) + float(r["value_seed1"])) / 2)


@pytest.mark.parametrize("sampler", ["random", "grid", "tpe", "gp", "qmc", "cmaes"])
@pytest.mark.parametrize("pruner", ["none", "median", "successive_halving", "hyperband"])
def test_every_sampler_and_pruner_drives_a_conditional_space(sampler, pruner):
    from optlab.sweep.study import make_pruner, make_sampler

    spec = spec_from_dict({"study": "s", "sampler": sampler, "pruner": pruner, "trials": 6, "space": {
        "optimizer": ["momentum", "adam"],
        "optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "momentum"}},
        "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}})
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec, seed=0),
                                pruner=make_pruner(spec))

    def objective(trial):
        a = suggest(trial, spec.space)
        for step in range(3):
            trial.report(a["optimizer.lr"] * step, step)
        return -abs(math.log10(a["optimizer.lr"]) + 1)

    study.optimize(objective, n_trials=6)
    assert len(study.trials) == 6 and all(t.state.name == "COMPLETE" for t in study.trials)
