"""Whole comparisons: `optlab compare lecture_optimizers --quick` end to end, budget parity
counted from the run folders, a second run reusing every run, and a comparison killed
twice (SIGKILL in its tuning, then in its reruns) ending with an uninterrupted one's numbers."""
import contextlib
import csv
import io
import json
import os
from pathlib import Path

import pytest
import yaml
from testkit import run_optlab

from optlab.cli import main

FINISHED = ("completed", "diverged")
TIMING = ("rerun_seconds_median", "chosen_trial")  # measured seconds; a retried trial's new number


def run_main(*args: str, cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(before)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """`optlab compare lecture_optimizers --quick`, once for this module (about 20 s of CPU)."""
    root = tmp_path_factory.mktemp("compare")
    code, out, err = run_main("compare", "lecture_optimizers", "--quick", cwd=root)
    return code, out, err, root / "outputs" / "comparisons" / "quick" / "lecture_optimizers"


def table(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_quick_comparison_writes_every_output(quick):
    code, out, err, folder = quick
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(folder.resolve())
    for name in ("results.csv", "profile.csv", "scores.csv", "pairwise.csv", "budget.csv", "compare.json",
                 "compare.md", "profile.png", "tuned.png"):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "compare.json").read_text())
    assert summary["quick"] is True and summary["parity"] is True
    assert "pipeline check, not a result" in (folder / "compare.md").read_text()
    assert {r["contender"] for r in table(folder / "scores.csv")} == {"sgd", "adam"}
    assert len(table(folder / "pairwise.csv")) == 2  # sgd against adam on each of the two workloads
    assert "budget parity holds" in err


def test_budget_parity_counted_from_the_run_folders(quick):
    """Each contender's tuning runs and their epochs, read from the run folders themselves."""
    _, _, _, folder = quick
    counted: dict[tuple[str, str], list[int]] = {}
    for sweep in (folder / "sweeps").glob("*-study*"):
        workload, contender, _ = sweep.name.split("-")
        for run in (sweep / "runs").iterdir():
            if json.loads((run / "summary.json").read_text())["status"] in FINISHED:
                epochs = yaml.safe_load((run / "config.yaml").read_text())["trainer"]["epochs"]
                counted.setdefault((workload, contender), []).append(epochs)
    spec = yaml.safe_load((Path(__file__).parents[2] / "comparisons" / "lecture_optimizers.yaml").read_text())
    quick_spec = spec["quick"]
    runs = quick_spec["studies"] * quick_spec["trials"]
    assert set(counted) == {(w, c) for w in quick_spec["workloads"] for c in quick_spec["contenders"]}
    for (workload, contender), epochs in counted.items():
        assert (len(epochs), sum(epochs)) == (runs, runs * quick_spec["epochs"]), (workload, contender)
    for row in table(folder / "budget.csv"):
        assert int(row["runs"]) == len(counted[row["workload"], row["contender"]])
        assert int(row["epochs_budgeted"]) == sum(counted[row["workload"], row["contender"]])


def test_a_second_run_reuses_every_run_and_gives_the_same_numbers(quick):
    _, _, _, folder = quick
    runs = sorted(folder.glob("sweeps/*/runs/*"))
    results = table(folder / "results.csv")
    code, _, err = run_main("compare", "lecture_optimizers", "--quick", cwd=folder.parents[3])
    assert code == 0, err
    assert sorted(folder.glob("sweeps/*/runs/*")) == runs
    assert without_timing(table(folder / "results.csv")) == without_timing(results)


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


SMALL = {
    "workloads": {"digits": {"base": ["data=digits", "model=mlp", "model.depth=1", "model.width=16"],
                             "metric": "val_acc", "target": "auto", "epochs": 2, "margin": 0.01}},
    "contenders": {"sgd": {"overrides": ["optimizer=sgd"], "space": {"optimizer.lr": {"low": 0.01, "high": 1.0,
                                                                                     "log": True}}},
                   "adam": {"overrides": ["optimizer=adam"], "space": {"optimizer.lr": {"low": 0.0001, "high": 0.1,
                                                                                       "log": True}}}},
    "protocol": {"tuning": {"studies": 2, "trials": 2, "sampler": "qmc"}, "rerun_seeds": 2}}


@pytest.mark.slow
def test_a_comparison_killed_in_its_tuning_and_in_its_reruns_ends_as_an_uninterrupted_one(tmp_path):
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(SMALL))
    args = ("compare", "small.yaml", "--heartbeat", "1", "--grace", "2", "--out")
    # 8 tuning runs of 2 epochs, then 4 reruns: the 5th epoch's end is inside the third tuning run
    killed = run_optlab(*args, "killed", cwd=tmp_path, env={"OPTLAB_FAULT": "train.epoch_end@5=kill"})
    assert killed.returncode == -9
    # the second process redoes the killed run and 5 more (12 epoch ends), then dies in the second rerun
    again = run_optlab(*args, "killed", cwd=tmp_path, env={"OPTLAB_FAULT": "train.epoch_end@15=kill"})
    assert again.returncode == -9 and "reruns [" in again.stderr, again.stderr
    finished = run_optlab(*args, "killed", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    clean = run_optlab(*args, "clean", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    resumed, uninterrupted = (tmp_path / "killed" / "small", tmp_path / "clean" / "small")
    assert without_timing(table(resumed / "results.csv")) == without_timing(table(uninterrupted / "results.csv"))
    for name in ("scores.csv", "profile.csv", "pairwise.csv", "budget.csv"):
        assert table(resumed / name) == table(uninterrupted / name), name
    interrupted = [run for run in resumed.glob("sweeps/*/runs/*")
                   if json.loads((run / "summary.json").read_text())["status"] == "interrupted"]
    assert len(interrupted) == 2  # the two killed runs stay, marked; their configurations ran again
