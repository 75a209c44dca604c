"""Writes stay where they belong: a study name that is a path (`../../X`, an absolute path)
is refused before anything is written (exit 2), and optlab never writes through a symlink
planted in a run folder it resumes or where its report folder goes (exit 5)."""
from __future__ import annotations

import json
import shutil

import pytest
from testkit import one_line, write_sweep

TINY = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "trainer.epochs=2", "trainer.progress=false"]


def everything_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.mark.parametrize("where", ["file", "flag"])
@pytest.mark.parametrize("name", ["../../../escaped", "ABSOLUTE", "..", "a\\..\\..\\b"])
def test_a_study_name_that_is_a_path_is_refused_before_anything_is_written(optlab, tmp_path, where, name):
    name = str(tmp_path / "absolute") if name == "ABSOLUTE" else name
    inside = tmp_path / "work"
    inside.mkdir()
    path = write_sweep(inside, **({"study": name} if where == "file" else {}))
    before = everything_under(tmp_path)
    result = optlab("sweep", str(path), *(["--study", name] if where == "flag" else []))
    one_line(result, 2, "a study name is one folder name")
    assert everything_under(tmp_path) == before


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    from optlab.config.compose import compose
    from optlab.training.api import train

    root = tmp_path_factory.mktemp("good")
    return train(compose([*TINY, f"trainer.out_dir={root}"])).run_dir


@pytest.mark.parametrize("linked", ["metrics.csv", "summary.json", "checkpoint.pt", "best.pt", "tb"])
def test_a_resume_never_writes_through_a_symlink_in_the_run_folder(optlab, tmp_path, good_run, linked):
    summary = json.loads((good_run / "summary.json").read_text())
    victim, run = shutil.copytree(good_run, tmp_path / "another-run"), shutil.copytree(good_run, tmp_path / "run")
    for folder in (victim, run):  # both resumable
        (folder / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (victim / "tb").mkdir()
    (run / linked).unlink(missing_ok=True)
    (run / linked).symlink_to(victim / linked)
    untouched = {p: p.read_bytes() for p in victim.iterdir() if p.is_file()}

    one_line(optlab("train", "--resume", str(run)), 5, f"{run / linked}: a symlink")
    assert {p: p.read_bytes() for p in victim.iterdir() if p.is_file()} == untouched


def test_a_table_append_refuses_a_symlink_that_appeared_after_the_check(tmp_path):
    from optlab.errors import StorageError
    from optlab.runs.files import CsvAppender

    (tmp_path / "other.csv").write_text("a\n1\n")
    table = CsvAppender(tmp_path / "t.csv", ["a"])
    (tmp_path / "t.csv").unlink()
    (tmp_path / "t.csv").symlink_to(tmp_path / "other.csv")
    with pytest.raises(StorageError, match="a symlink"):
        table.append({"a": 2})
    assert (tmp_path / "other.csv").read_text() == "a\n1\n"


def test_a_report_never_writes_into_a_symlinked_report_folder(optlab, tmp_path, good_run):
    parent = tmp_path / "runs"
    shutil.copytree(good_run, parent / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (parent / "report-val_acc-final").symlink_to(elsewhere)
    one_line(optlab("report", str(parent), "--no-plots"), 5, "report-val_acc-final: a symlink")
    assert list(elsewhere.iterdir()) == []
