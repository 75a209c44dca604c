"""The Python API (optlab.api, reached as optlab.train, ...): the commands' code, Python
objects back, and `import optlab` as cheap as before."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from testkit import TINY, TINY_BASE, write_sweep

import optlab
from optlab.errors import ConfigError

QUICK = [*TINY_BASE[:-1], *TINY[1:]]  # a one-epoch digits MLP of width 16, quiet


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the API writes under ./outputs, as the commands do


def python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def test_import_optlab_loads_no_heavy_module_and_names_only_the_api(tmp_path):
    done = python("import sys, optlab; print(sorted(m for m in ('torch', 'pandas', 'omegaconf', 'optuna', "
                  "'hydra', 'optlab.api') if m in sys.modules)); print(optlab.__all__)", tmp_path)
    assert done.returncode == 0, done.stderr
    loaded, names = done.stdout.splitlines()
    assert loaded == "[]"
    assert names == str(["OptlabError", "compose", "report", "study", "sweep", "train", "train_many"])


@pytest.mark.slow
def test_the_readme_acceptance_line_works_from_any_directory(tmp_path):
    done = python("import optlab; r = optlab.train(['trainer.epochs=1']); print(r.summary['final_val_acc'])", tmp_path)
    assert done.returncode == 0, done.stderr
    assert 0.1 < float(done.stdout.splitlines()[-1]) <= 1
    assert (tmp_path / "outputs" / "runs").is_dir()
    module = subprocess.run([sys.executable, "-m", "optlab", "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout.startswith("optlab ")
    assert "ModuleNotFoundError" in python("import runner", tmp_path).stderr


def test_the_command_packages_are_the_packages_and_call_the_api():
    from optlab import report, study, sweep
    from optlab.report import load

    assert report.load is load and optlab.report is report
    assert all(callable(package) for package in (report, study, sweep))
    with pytest.raises(ConfigError, match="unknown setting"):
        optlab.sweep("lr_wd", sampler_seed=1)


def test_compose_checks_the_overrides_as_the_command_line_does():
    cfg = optlab.compose(["optimizer=adam", "optimizer.lr=0.01"])
    assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == 0.01
    with pytest.raises(optlab.OptlabError) as bad:
        optlab.compose(["optimizer.lr=-1"])
    assert bad.value.exit_code == 2
    with pytest.raises(ConfigError, match="a list of strings"):
        optlab.compose("optimizer=adam")


def test_train_returns_the_run_folder_summary_and_metrics():
    run = optlab.train([*QUICK, "trainer.epochs=2"])
    assert run.status == "completed" and run.run_dir.is_dir()
    assert run.summary["epochs_done"] == 2
    assert isinstance(run.metrics, pd.DataFrame) and list(run.metrics["epoch"]) == [0, 1]
    assert run.metrics["val_acc"].iloc[-1] == pytest.approx(run.summary["final_val_acc"])


def test_an_edited_config_is_checked_again_and_a_diverged_run_is_returned():
    cfg = optlab.compose(QUICK)
    cfg.optimizer.lr = -0.1
    with pytest.raises(ConfigError, match="optimizer.lr"):
        optlab.train(cfg)
    cfg.optimizer.lr = 1e6
    run = optlab.train(cfg)
    assert run.status == "diverged" and run.summary["status"] == "diverged"


def test_train_many_keeps_the_order_and_trains_populations():
    lrs = [0.05, 0.2, 0.1]
    configs = [[*QUICK, f"optimizer.lr={lr}"] for lr in lrs] + [[*QUICK, "trainer.diagnostics=true"]]
    runs = optlab.train_many(configs, population=4)
    assert [r.summary.get("execution") for r in runs] == ["population"] * 3 + [None]  # diagnostics: alone
    read = [float(pd.read_csv(r.run_dir / "metrics.csv")["lr"].iloc[0]) for r in runs[:3]]
    assert read == lrs


def test_report_gives_the_groups_and_runs_of_optlab_report(tmp_path):
    runs = optlab.train_many([[*QUICK, f"optimizer.lr={lr}", f"trainer.seed={seed}"]
                              for lr in (0.05, 0.2) for seed in (0, 1)], population=4)
    result = optlab.report(tmp_path / "outputs", by="optimizer.lr")
    assert list(result.groups["n"]) == [2, 2] and len(result.runs) == 4
    assert set(result.groups["optimizer.lr"]) == {0.05, 0.2}
    assert result.metric == "val_acc (validation, final epoch)"
    best = max(runs, key=lambda r: r.summary["final_val_acc"])
    assert result.groups["best"].iloc[0] == pytest.approx(best.summary["final_val_acc"])


def test_sweep_runs_a_sweep_file_to_its_budget(tmp_path):
    result = optlab.sweep(str(write_sweep(tmp_path)), trials=2)
    assert result.sweep_dir == tmp_path / "outputs" / "sweeps" / "tiny"
    assert len(result.trials) == 2 and set(result.trials["status"]) == {"completed"}
    assert result.best["value"] == result.trials["value"].max()


def test_study_runs_a_shipped_study_and_never_calls_a_quick_run_a_reproduction(tmp_path):
    result = optlab.study("symmetry", quick=True, seeds=1, out=tmp_path / "studies")
    assert result.folder == tmp_path / "studies" / "quick" / "symmetry"
    assert result.verdict == "inconclusive"
    assert {c["criterion"] for c in result.criteria} and set(result.table["arm"]) == {"zeros", "constant", "xavier"}
    assert len(result.runs) == 3
