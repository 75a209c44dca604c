"""Files written whole or not at all: append-only tables, torn last lines, atomic rewrites, fsyncs."""
import os

import torch

from optlab.runs.files import CsvAppender, read_rows, truncate_after_epoch, write_atomic
from optlab.runs.folder import load_checkpoint, save_checkpoint


def test_rows_are_appended_and_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "m.csv"
    table = CsvAppender(path, ["epoch", "loss"])
    table.append({"epoch": 0, "loss": 0.5})
    table.append({"epoch": 1, "loss": 0.25})
    with open(path, "a") as f:
        f.write("2,0.1")  # a write cut off before its newline
    assert read_rows(path) == [{"epoch": "0", "loss": "0.5"}, {"epoch": "1", "loss": "0.25"}]


def test_reopening_a_table_does_not_repeat_the_header(tmp_path):
    path = tmp_path / "m.csv"
    CsvAppender(path, ["a"]).append({"a": 1})
    CsvAppender(path, ["a"]).append({"a": 2})
    assert path.read_text() == "a\n1\n2\n"


def test_truncate_after_epoch_drops_rows_past_the_checkpoint(tmp_path):
    path = tmp_path / "m.csv"
    table = CsvAppender(path, ["epoch", "x"])
    for epoch in range(4):
        table.append({"epoch": epoch, "x": epoch * 2})
    truncate_after_epoch(path, 1)
    assert [r["epoch"] for r in read_rows(path)] == ["0", "1"]


def test_atomic_writes_leave_no_temp_files(tmp_path):
    write_atomic(tmp_path / "a.txt", "hello")
    save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(2)})
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "c.pt"]
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["w"], torch.ones(2))


def test_floats_round_trip_exactly(tmp_path):
    path = tmp_path / "m.csv"
    value = 0.1 + 0.2
    CsvAppender(path, ["v"]).append({"v": value})
    assert float(read_rows(path)[0]["v"]) == value


def test_a_table_that_is_not_durable_fsyncs_only_when_synced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    table = CsvAppender(tmp_path / "m.csv", ["epoch"], durable=False)
    table.append({"epoch": 0})
    table.append({"epoch": 1})
    assert synced == [] and [r["epoch"] for r in read_rows(tmp_path / "m.csv")] == ["0", "1"]
    table.sync()
    assert len(synced) == 1
    CsvAppender(tmp_path / "d.csv", ["epoch"]).append({"epoch": 0})
    assert len(synced) == 3  # a durable table: header and row each fsynced


def test_inside_with_the_table_writes_through_one_open_file(tmp_path, monkeypatch):
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    path = tmp_path / "m.csv"
    table = CsvAppender(path, ["epoch"], durable=False)
    with table:
        for epoch in range(3):
            table.append({"epoch": epoch})
            assert [r["epoch"] for r in read_rows(path)][-1] == str(epoch)  # on disk at once, file still open
    assert opened == [path, path]  # the header's write, then the block's one open
    assert table.fd is None
    table.append({"epoch": 3})  # outside a block each write opens and closes the file again
    assert [r["epoch"] for r in read_rows(path)] == ["0", "1", "2", "3"] and len(opened) == 3
