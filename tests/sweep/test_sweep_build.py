"""The one spec a sweep starts with (a file or --refine, flags, overrides), validated once; the shipped sweeps."""
from __future__ import annotations

import dataclasses
import json

import optuna
import pytest
from testkit import REPO, read_rows, sweep_folder, write_sweep

from optlab.cli.app import main
from optlab.sweep.build import build_spec
from optlab.sweep.outputs import read_trial_rows
from optlab.sweep.space import suggest, to_overrides

SWEEP_FILES = sorted((REPO / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[p.stem for p in SWEEP_FILES])
def test_every_sweep_file_composes_with_a_sample_of_its_space(path):
    from optlab.config.compose import compose

    spec = build_spec(str(path))  # validated: base + probe samples of the space composed
    study = optuna.create_study(direction=spec.direction, sampler=optuna.samplers.RandomSampler(seed=1))
    overrides = to_overrides(spec.space, suggest(study.ask(), spec.space))
    cfg = compose([*spec.base, *overrides])
    assert cfg.data.name == "digits"


def test_example_sweeps_are_the_four_the_issue_names():
    assert {p.stem for p in SWEEP_FILES} >= {"lr_wd", "optimizers", "init_norm", "batch_lr"}


@pytest.mark.parametrize("change, expected", [
    ({"space": {"optimizer.nope": {"type": "float", "low": 0.1, "high": 1.0}}}, "optimizer.nope"),
    ({"space": {"optimizer.lr": {"type": "float", "low": 1.0, "high": 0.1}}}, "low (1.0) > high (0.1)"),
    ({"space": {"optimizer.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}, "needs low > 0"),
    ({"sampler": "annealing"}, "sampler 'annealing': unknown"),
    ({"pruner": "sometimes"}, "pruner 'sometimes': unknown"),
    ({"space": {"norm": ["none", "sparkle"]}}, "norm=sparkle: unknown norm"),
    ({"space": {"optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "adam"}}}},
     "not an earlier parameter"),
])
def test_bad_sweep_input_exits_2_with_one_line(tmp_path, capsys, change, expected):
    code = main(["sweep", str(write_sweep(tmp_path, **change))])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and expected in err, err


def test_refine_cli_starts_a_narrowed_study(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, trials=2, seed=0)
    assert main(["sweep", str(path)]) == 0
    assert main(["sweep", "--refine", str(sweep_folder(tmp_path)), "--top", "2", "--trials", "1"]) == 0
    refined = sweep_folder(tmp_path, "tiny-refined")
    meta = json.loads((refined / "sweep.json").read_text())
    lrs = [float(r["param.optimizer.lr"]) for r in read_trial_rows(sweep_folder(tmp_path))]
    lr = meta["space"]["optimizer.lr"]
    assert 0.01 <= lr["low"] <= lr["high"] <= 0.5 and (lr["low"], lr["high"]) != (0.01, 0.5)
    assert meta["refined_from"] == str(sweep_folder(tmp_path))
    assert len(read_rows(refined)) == 1 and lrs


def test_the_spec_is_validated_once_per_sweep_start(tmp_path, monkeypatch):
    """Settings checked and probes composed once, for a sweep file and for --refine (which
    also reads the old sweep's spec)."""
    from optlab.sweep import build, space, spec

    calls = {"settings": 0, "probes": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    settings = counted("settings", spec.check_settings)
    monkeypatch.setattr(spec, "check_settings", settings)
    monkeypatch.setattr(build, "check_settings", settings)
    monkeypatch.setattr(space, "probe_assignments", counted("probes", space.probe_assignments))
    path = write_sweep(tmp_path, trials=2, seed=0)
    assert main(["sweep", str(path)]) == 0
    assert calls == {"settings": 1, "probes": 1}
    assert main(["sweep", "--refine", str(sweep_folder(tmp_path)), "--top", "2", "--trials", "1"]) == 0
    assert calls == {"settings": 2, "probes": 2}


def test_refine_changes_are_validated_like_a_files(tmp_path, capsys):
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path)]) == 0
    capsys.readouterr()
    assert main(["sweep", "--refine", str(sweep_folder(tmp_path)), "--seeds", "0"]) == 2
    assert "seeds=0: must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [[], ["--population", "4"]])
def test_an_override_of_a_searched_key_exits_2_naming_both_ways_out(tmp_path, capsys, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    code = main(["sweep", "sweeps/lr_wd.yaml", "--trials", "2", *extra, "optimizer.lr=0.1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("optlab: error: optimizer.lr=0.1: ") and "searches optimizer.lr" in err
    assert "remove optimizer.lr from the space, or drop the override" in err
    assert not (tmp_path / "outputs").exists()  # refused before the sweep folder is made


def test_a_study_arm_that_sets_a_key_its_sweep_searches_is_refused(tmp_path):
    from optlab.errors import ConfigError
    from optlab.study.execute import plan_sweeps
    from optlab.study.spec import load_study

    study = load_study("bergstra2012_random_search")
    arm = study.arms[0]
    clashing = dataclasses.replace(study, arms=(dataclasses.replace(arm, overrides=("optimizer.lr=0.01",)),))
    with pytest.raises(ConfigError, match=r"^optimizer\.lr=0\.01: study bergstra2012_random_search, arm random "
                                          r"searches optimizer\.lr .*remove optimizer\.lr from the space"):
        plan_sweeps(clashing, tmp_path)
    plan_sweeps(study, tmp_path)  # as shipped: fine
