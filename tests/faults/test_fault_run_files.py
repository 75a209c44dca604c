"""Garbage in one run folder's files: `optlab report PARENT` lists that folder as unreadable,
with the reason, and reports the rest (exit 0); `optlab train --resume` of it is one line and
exit 3 (a damaged run file), never an unexpected error."""
from __future__ import annotations

import json
import shutil

import pytest

TINY = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "trainer.epochs=2", "trainer.progress=false"]
GARBAGE = bytes(range(256)) * 4  # not UTF-8, NUL bytes included


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    from optlab.config.compose import compose
    from optlab.training.api import train

    root = tmp_path_factory.mktemp("good")
    return train(compose([*TINY, f"trainer.out_dir={root}"])).run_dir


def interrupted_copy(good_run, where):
    """A copy of the run that a resume would continue."""
    run = shutil.copytree(good_run, where)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    return run


def replace_in(name: str, old: str, new: str):
    def damage(run):
        (run / name).write_text((run / name).read_text().replace(old, new, 1))
    return damage


DAMAGES = {
    "binary config.yaml": (lambda run: (run / "config.yaml").write_bytes(GARBAGE), "config.yaml"),
    "binary metrics.csv": (lambda run: (run / "metrics.csv").write_bytes(GARBAGE), "metrics.csv"),
    "metrics.csv without an epoch column": (replace_in("metrics.csv", "epoch,", "epoch_,"), "metrics.csv"),
    "metrics.csv with epoch=abc": (replace_in("metrics.csv", "\n0,", "\nabc,"), "metrics.csv"),
    "config.yaml that is YAML but no run config": (lambda run: (run / "config.yaml").write_text("a: 1\nb: [2]\n"),
                                                   "config.yaml"),
    "summary.json nested 100,000 deep": (lambda run: (run / "summary.json").write_text("[" * 100_000), "summary.json"),
}


@pytest.mark.parametrize("case", [c for c in DAMAGES if "YAML but" not in c])  # a report reads any mapping
def test_one_garbage_folder_does_not_abort_a_report(optlab, tmp_path, good_run, case):
    damage, named = DAMAGES[case]
    parent = tmp_path / "runs"
    shutil.copytree(good_run, parent / "good")
    bad = shutil.copytree(good_run, parent / "bad")
    damage(bad)
    reported = optlab("report", str(parent), "--no-plots", "--format", "json")
    assert reported.returncode == 0, reported.stderr
    assert f"skipped {bad}: {named}" in reported.stderr, reported.stderr
    assert '"runs":1' in reported.stdout and '"completed":1' in reported.stdout  # the good run


@pytest.mark.parametrize("case", [c for c in DAMAGES if "summary" not in c])  # a resume rewrites summary.json
def test_resuming_a_damaged_run_folder_is_one_line_and_exit_3(optlab, tmp_path, good_run, case):
    damage, named = DAMAGES[case]
    run = interrupted_copy(good_run, tmp_path / "run")
    damage(run)
    result = optlab("train", "--resume", str(run))
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"optlab: error: {run / named}: damaged"), result.stderr
