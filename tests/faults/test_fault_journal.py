"""A journal-file study (`--storage journal:PATH`, the Slurm default) survives a torn last
line: cut by hand (`truncate -s -20`, a copy cut short) or left by a disk that filled up
mid-append (a real tmpfs). The next command cuts the torn line off under the journal's lock
before it appends, keeps the bytes in PATH.torn and says so; a full disk is exit 5 in one
line, with no torn line left; the trials finished before are all still there, and the rerun
ends with exactly the budget."""
from __future__ import annotations

import csv
import os

import pytest
import yaml
from faultkit import one_error_line, optlab

pytestmark = pytest.mark.slow

FAST_STALE = ["--heartbeat", "1", "--grace", "2"]  # a trial left RUNNING by a refused write is retried soon


def sweep_file(tmp_path, trials: int):
    body = {"study": "journal", "metric": "val_acc", "sampler": "random", "pruner": "none", "trials": trials,
            "base": ["data=digits", "model=mlp", "model.depth=1", "model.width=8", "optimizer=sgd", "trainer.epochs=2",
                     "trainer.progress=false", f"trainer.out_dir={tmp_path / 'out'}"],
            "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2, "log": True}}}
    path = tmp_path / "journal.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def finished(tmp_path) -> list[dict]:
    with open(tmp_path / "out" / "sweeps" / "journal" / "trials.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["status"] in ("completed", "pruned", "diverged", "failed")]


def test_a_journal_cut_short_is_repaired_before_the_next_append(tmp_path):
    journal = tmp_path / "study.journal"
    first = optlab("sweep", str(sweep_file(tmp_path, 4)), "--storage", f"journal:{journal}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {r["number"] for r in finished(tmp_path)}
    os.truncate(journal, journal.stat().st_size - 20)  # truncate -s -20
    torn = journal.read_bytes()[journal.read_bytes().rfind(b"\n") + 1:]

    again = optlab("sweep", str(sweep_file(tmp_path, 6)), "--storage", f"journal:{journal}", *FAST_STALE,
                   cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{journal}: cut a torn last line ({len(torn)} bytes" in again.stderr
    assert (tmp_path / "study.journal.torn").read_bytes() == torn + b"\n"
    assert journal.read_bytes().endswith(b"\n")
    rows = finished(tmp_path)
    assert len(rows) == 6 and before - {r["number"] for r in rows} <= {max(before)}  # at most the cut one is redone
    third = optlab("sweep", str(sweep_file(tmp_path, 6)), "--storage", f"journal:{journal}", cwd=tmp_path)
    assert third.returncode == 0, third.stderr  # every later command reads the journal


def test_a_disk_that_fills_up_under_the_journal_is_exit_5_and_leaves_no_torn_line(tmp_path, tmpfs):
    disk = tmpfs.mount(24, "journal-disk")  # a few trials' logs fit, not all
    journal = disk / "study.journal"
    full = optlab("sweep", str(sweep_file(tmp_path, 12)), "--storage", f"journal:{journal}", cwd=tmp_path)
    assert full.returncode == 5, full.stderr
    one_error_line(full.stderr, str(journal), "the disk is full")
    assert journal.read_bytes().endswith(b"\n")
    before = {r["number"] for r in finished(tmp_path)}
    assert before, "no trial finished before the disk filled: make the disk larger"

    tmpfs.remount(disk, "size=4m")  # space is freed
    again = optlab("sweep", str(sweep_file(tmp_path, 12)), "--storage", f"journal:{journal}", *FAST_STALE,
                   cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rows = finished(tmp_path)
    assert len(rows) == 12 and before <= {r["number"] for r in rows}
