"""A study is what its fingerprint says: reruns and other machines' workers with other
settings are refused, --extend raises only the budget; the study carries its metric name and
sweep file; `optlab rerun` gives the best configurations fresh seeds."""
from __future__ import annotations

import json
import os

import optuna
import pytest
import yaml
from test_sweep import write_sweep

from runner.cli.app import main


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def study_of(tmp_path, name="tiny", url=None):
    url = url or f"sqlite:///{tmp_path / 'outputs' / 'sweeps' / name / 'study.db'}"
    return optuna.load_study(study_name=name, storage=url)


def finished(study) -> int:
    return sum(t.state.name == "COMPLETE" for t in study.trials)


def test_a_rerun_with_a_changed_base_override_exits_2_naming_the_key(tmp_path, capsys):
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path), "trainer.epochs=1"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(path), "--trials", "2", "trainer.epochs=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "base trainer.epochs 1 -> 2" in err and "--study" in err and "--extend" in err
    assert finished(study_of(tmp_path)) == 1
    assert json.loads((tmp_path / "outputs" / "sweeps" / "tiny" / "sweep.json").read_text())["trials"] == 1


@pytest.mark.parametrize("change", [{"metric": "val_loss"}, {"seeds": 2}, {"sampler": "tpe"},
                                    {"space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.9}}}])
def test_a_rerun_that_changes_what_a_trial_is_is_refused(tmp_path, capsys, change):
    assert main(["sweep", str(write_sweep(tmp_path, trials=1))]) == 0
    capsys.readouterr()
    assert main(["sweep", str(write_sweep(tmp_path, trials=1, **change))]) == 2
    assert "was created with other settings" in capsys.readouterr().err


def test_budget_workers_and_timeout_may_change_and_extend_adds_trials(tmp_path, capsys):
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path)]) == 0
    assert main(["sweep", str(path), "--trials", "2", "--timeout", "600", "--jobs", "1"]) == 0
    assert finished(study_of(tmp_path)) == 2
    assert main(["sweep", str(path), "--extend", "1"]) == 0
    assert finished(study_of(tmp_path)) == 3
    assert json.loads((tmp_path / "outputs" / "sweeps" / "tiny" / "sweep.json").read_text())["trials"] == 3


def test_extend_on_a_study_that_never_ran_exits_2(tmp_path, capsys):
    assert main(["sweep", str(write_sweep(tmp_path)), "--extend", "2"]) == 2
    assert "no budget to extend" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("OPTLAB_TEST_POSTGRES_URL"),
                    reason="OPTLAB_TEST_POSTGRES_URL is unset (eval \"$(bash .ci/postgres.sh)\" starts a server)")
def test_a_worker_joining_a_shared_study_with_other_settings_is_refused(tmp_path, capsys):
    import uuid

    url, study = os.environ["OPTLAB_TEST_POSTGRES_URL"], f"shared_{uuid.uuid4().hex[:8]}"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = write_sweep(tmp_path / "a", trials=1)
    assert main(["sweep", str(first), "--storage", url, "--study", study]) == 0
    capsys.readouterr()
    other = write_sweep(tmp_path / "b", trials=2)
    assert main(["sweep", str(other), "--storage", url, "--study", study, "model.width=32"]) == 2
    assert "base model.width 16 -> 32" in capsys.readouterr().err
    assert finished(optuna.load_study(study_name=study, storage=url)) == 1


def test_the_study_carries_its_metric_name_and_sweep_file(tmp_path):
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path)]) == 0
    study = study_of(tmp_path)
    assert study.metric_names == ["val_acc"]
    assert study.user_attrs["optlab.sweep"] == path.read_text()


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"metric: val_acc\nbase: [caf\xe9]\n"])
def test_a_binary_or_non_utf8_sweep_file_exits_2_in_one_line(tmp_path, capsys, content):
    (tmp_path / "bad.yaml").write_bytes(content)
    assert main(["sweep", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml" in err


def test_a_workers_start_up_is_not_counted_in_its_first_trial(tmp_path, monkeypatch):
    """The first trial starts only once the worker has imported and composed what it needs."""
    import runner.sweep.workers as study_module

    ready = {}
    real_warm_up = study_module.warm_up

    def warm_up(spec):
        real_warm_up(spec)
        ready["at"] = __import__("datetime").datetime.now()

    monkeypatch.setattr(study_module, "warm_up", warm_up)
    assert main(["sweep", str(write_sweep(tmp_path, trials=1))]) == 0
    assert study_of(tmp_path).trials[0].datetime_start >= ready["at"]


def test_rerun_trains_the_best_configuration_with_fresh_seeds(tmp_path, capsys):
    path = write_sweep(tmp_path, trials=2, seeds=2)
    assert main(["sweep", str(path)]) == 0
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    capsys.readouterr()
    assert main(["rerun", str(folder), "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    runs = sorted(p for p in (folder / "rerun").iterdir() if (p / "summary.json").exists())
    assert len(runs) == 3
    seeds = sorted(yaml.safe_load((r / "config.yaml").read_text())["trainer"]["seed"] for r in runs)
    assert seeds == [2, 3, 4]  # the sweep used 0 and 1
    best = max((t for t in study_of(tmp_path).trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    lrs = {yaml.safe_load((r / "config.yaml").read_text())["optimizer"]["lr"] for r in runs}
    assert lrs == {best.params["optimizer.lr"]}
    assert "3/3" in out and "val_acc" in out
    assert main(["rerun", str(folder), "--seeds", "3"]) == 0  # again: nothing new to train
    assert len([p for p in (folder / "rerun").iterdir() if (p / "summary.json").exists()]) == 3


def test_list_piped_is_not_cut_and_speaks_csv(tmp_path, capsys):
    assert main(["list", "optimizer"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and "adagrad" in out and "initial_accumulator_value=0.0" in out
    assert main(["list", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "group,option,description" and any(line.startswith("optimizer,adagrad,") for line in lines)
