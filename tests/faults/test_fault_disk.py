"""A disk that fills up, for real (a small tmpfs) and by a writer that writes short: the
table is cut back to its last complete row, nothing half-written stays, the run says it
failed and why, and after space is freed it resumes to the metrics it would have had."""
from __future__ import annotations

import errno
import os

import pytest
from faultkit import (
    SMALL_RUN,
    assert_complete_rows,
    metric_rows,
    one_error_line,
    only_run,
    optlab,
    summary,
    temp_files,
    )

from optlab.errors import StorageError
from optlab.runs import files as metrics

pytestmark = pytest.mark.slow  # real processes

BIG_CHECKPOINT = ["data=digits", "model=mlp", "model.depth=2", "model.width=128", "optimizer=momentum",
                  "trainer.epochs=4", "trainer.checkpoint_every_s=0", "trainer.progress=false"]


def test_a_writer_that_writes_short_still_writes_every_row_whole(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(metrics, "_write", lambda fd, data: real_write(fd, bytes(data[:7])))
    table = metrics.CsvAppender(tmp_path / "t.csv", ["a", "b"])
    table.append({"a": 1.5, "b": "a longer cell than seven bytes"})
    assert (tmp_path / "t.csv").read_text() == "a,b\n1.5,a longer cell than seven bytes\n"


def test_a_short_write_then_a_full_disk_cuts_the_table_back_to_its_last_row(tmp_path, monkeypatch):
    table = metrics.CsvAppender(tmp_path / "t.csv", ["a", "b"])
    table.append({"a": 1, "b": 2})
    real_write, calls = os.write, []

    def fill_up(fd, data):  # what a filling disk does: part of the buffer, then ENOSPC
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(metrics, "_write", fill_up)
    with pytest.raises(StorageError, match="t.csv: the disk is full"):
        table.append({"a": 27644, "b": "0.1,64,more"})
    monkeypatch.setattr(metrics, "_write", real_write)
    table.append({"a": 3, "b": 4})  # space is back: the next row lands on a line of its own
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,2\n3,4\n"


def test_on_a_really_full_tmpfs_a_row_is_never_left_torn(tmpfs):
    disk = tmpfs.mount(12)  # three pages
    table = metrics.CsvAppender(disk / "metrics.csv", ["epoch", "note"])
    (disk / "filler").write_bytes(b"x" * 4096)
    with pytest.raises(StorageError, match="the disk is full"):
        table.append({"epoch": 0, "note": "y" * 12000})  # a page and a half fit, then the disk is full
    assert (disk / "metrics.csv").read_text() == "epoch,note\n"
    (disk / "filler").unlink()
    table.append({"epoch": 0, "note": "short"})
    assert (disk / "metrics.csv").read_text() == "epoch,note\n0,short\n"


def test_a_table_whose_last_line_is_torn_is_cut_before_the_next_row(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n27644,0.")  # a writer killed mid-row
    metrics.CsvAppender(tmp_path / "t.csv", ["a", "b"]).append({"a": 3, "b": 4})
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,2\n3,4\n"


def test_an_atomic_write_that_fails_leaves_no_temp_file_and_the_old_file(tmpfs):
    disk = tmpfs.mount(8)
    metrics.write_atomic(disk / "summary.json", "old")
    with pytest.raises(StorageError, match="summary.json: the disk is full"):
        metrics.write_atomic(disk / "summary.json", "x" * 20000)
    assert (disk / "summary.json").read_text() == "old" and temp_files(disk) == []


def test_a_run_that_outgrows_its_disk_fails_in_one_line_then_resumes_to_the_same_metrics(tmpfs, tmp_path):
    disk = tmpfs.mount(300)  # the first checkpoint fits, a second one beside it does not
    full = optlab("train", *BIG_CHECKPOINT, f"trainer.out_dir={disk}", cwd=tmp_path)
    assert full.returncode == 5, full.stderr
    one_error_line(full.stderr, "checkpoint.pt", "the disk is full")
    run = only_run(disk)
    assert full.stdout.strip().splitlines()[-1] == str(run)
    assert summary(run)["status"] == "failed" and "the disk is full" in summary(run)["reason"]
    assert temp_files(disk) == []
    assert_complete_rows(run / "metrics.csv")

    tmpfs.remount(disk, "size=8m")  # space is freed
    resumed = optlab("train", "--resume", str(run), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    optlab("train", *BIG_CHECKPOINT, f"trainer.out_dir={tmp_path / 'alone'}", cwd=tmp_path)
    assert metric_rows(run) == metric_rows(only_run(tmp_path / "alone"))
    assert summary(run)["status"] == "completed"


def test_a_disk_full_from_the_start_leaves_no_run_folder(tmpfs, tmp_path):
    disk = tmpfs.mount(4)
    (disk / "filler").write_bytes(b"x" * 4096)
    result = optlab("train", *SMALL_RUN, f"trainer.out_dir={disk}", cwd=tmp_path)
    assert result.returncode == 5, result.stderr
    one_error_line(result.stderr, "the disk is full")
    assert list((disk / "runs").iterdir()) == [] and temp_files(disk) == []
