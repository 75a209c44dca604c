"""Whole studies: every shipped one in quick mode, reuse of finished runs, resuming a killed study."""
import json

import pytest
from testkit import run_optlab

from optlab.study.run import StudyOptions, run_study
from optlab.study.spec import load_study, study_names


@pytest.mark.parametrize("name", study_names())  # in this process (sweeps too): about 45 s in all
def test_every_study_runs_in_quick_mode_and_never_claims_a_reproduction(name, tmp_path):
    verdict = run_study(load_study(name), StudyOptions(quick=True, out_root=tmp_path))
    folder = tmp_path / "quick" / name
    for file in ("verdict.json", "study.md", "table.csv", "runs.csv", f"{name}.png"):
        assert (folder / file).is_file(), file
    assert verdict["quick"] is True and verdict["verdict"] == "inconclusive"
    assert verdict["quick_outcome"] in ("reproduced", "not_reproduced", "inconclusive")
    assert json.loads((folder / "verdict.json").read_text())["criteria"][0]["effect"]
    assert "never a reproduction" in (folder / "study.md").read_text()


def test_a_rerun_reuses_the_finished_runs_and_gives_the_same_numbers(tmp_path, capsys):
    options = StudyOptions(quick=True, seeds=2, population=1, out_root=tmp_path)
    first = run_study(load_study("symmetry"), options)
    capsys.readouterr()
    second = run_study(load_study("symmetry"), options)
    assert "6 run(s): 6 reused, 0 to resume, 0 to train" in capsys.readouterr().err
    assert second["reused"] == 6 and second["values"] == first["values"]
    assert len(list((tmp_path / "quick" / "symmetry" / "runs").iterdir())) == 6


def test_more_seeds_train_only_the_new_ones(tmp_path, capsys):
    run_study(load_study("symmetry"), StudyOptions(quick=True, seeds=1, population=1, out_root=tmp_path))
    capsys.readouterr()
    verdict = run_study(load_study("symmetry"), StudyOptions(quick=True, seeds=2, population=1, out_root=tmp_path))
    assert "6 run(s): 3 reused, 0 to resume, 3 to train" in capsys.readouterr().err
    assert verdict["arms"]["unit_spread"]["zeros"]["n"] == 2


@pytest.mark.slow
def test_a_killed_study_resumes_its_interrupted_run_and_ends_as_an_uninterrupted_one(tmp_path):
    args = ("study", "run", "symmetry", "--quick", "--population", "1", "--seeds", "2")
    killed = run_optlab(*args, "--out", "killed", cwd=tmp_path, env={"OPTLAB_FAULT": "train.step@30=kill"})
    assert killed.returncode == -9
    rerun = run_optlab(*args, "--out", "killed", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "6 run(s): 1 reused, 1 to resume, 4 to train" in rerun.stderr  # one finished, one resumed
    clean = run_optlab(*args, "--out", "clean", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    resumed, uninterrupted = (json.loads((tmp_path / out / "quick" / "symmetry" / "verdict.json").read_text())
                              for out in ("killed", "clean"))
    assert resumed["values"] == uninterrupted["values"]
    assert len(list((tmp_path / "killed" / "quick" / "symmetry" / "runs").iterdir())) == 6


@pytest.mark.slow
def test_sigterm_stops_a_study_inside_a_population_and_the_rerun_finishes_it(tmp_path):
    args = ("study", "run", "symmetry", "--quick", "--seeds", "2", "--population", "2")
    stopped = run_optlab(*args, cwd=tmp_path, env={"OPTLAB_FAULT": "train.step@30=sigterm"})
    assert stopped.returncode == 143, stopped.stderr
    assert not (tmp_path / "outputs/studies/quick/symmetry/verdict.json").exists()
    assert len(list((tmp_path / "outputs/studies/quick/symmetry/runs").iterdir())) == 4  # a finished pair, a stopped one
    rerun = run_optlab(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "6 run(s): 2 reused, 2 to resume, 2 to train" in rerun.stderr


def test_a_bad_sweep_arm_stops_the_study_before_any_run_trains(tmp_path):
    from optlab.errors import ConfigError
    from optlab.study.spec import spec_from_dict

    base = ["data=digits", "model=mlp", "model.depth=1", "model.width=8", "trainer.epochs=1"]
    spec = spec_from_dict("mixed", {
        "claim": "c", "source": "s", "scaled_down": "d", "base": base, "seeds": 1,
        "arms": {"grid": [], "swept": {"sweep": {"metric": "val_acc", "sampler": "nope", "trials": 2,
                                                  "space": {"optimizer.lr": {"type": "float", "low": 0.01,
                                                                              "high": 0.5}}}}},
        "measures": {"acc": {"kind": "metric", "column": "val_acc"}},
        "criteria": [{"kind": "every_seed", "measure": "acc", "arm": "grid", "op": ">", "threshold": 0}],
        "figure": {"kind": "bars"}})
    with pytest.raises(ConfigError, match="sampler 'nope'"):
        run_study(spec, StudyOptions(out_root=tmp_path))
    assert not list((tmp_path / "mixed" / "runs").iterdir())
