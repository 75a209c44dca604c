"""Checkpoints: when they are written (on a background thread), and how a run resumes from one."""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from runner.errors import ConfigError, DataError, StorageError
from runner.runs.files import (
    CsvAppender,
    read_json,
    remove_stale_temp_files,
    truncate_after_epoch,
    write_atomic,
)
from runner.runs.folder import (
    METRIC_COLUMNS,
    load_checkpoint,
    new_run_dir,
    remove_if_empty,
    save_checkpoint,
    write_summary,
)
from runner.training.state import restore_rng_states


class RunFolderWriter:
    """Writes checkpoints (and fsyncs the metrics rows they cover) on one background thread,
    in order, so that the fsyncs overlap the next epoch instead of stalling the loop.

    Leaving the `with` block waits until everything is on disk and re-raises a failed write.
    A checkpoint is a CPU snapshot taken when it is submitted, never the live tensors.
    """

    MAX_PENDING = 4  # writes in flight before submit waits for the oldest (bounds snapshot memory)

    def __enter__(self) -> "RunFolderWriter":
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optlab-writer")
        self.pending: list[Future] = []
        return self

    def submit(self, write: Callable, *args) -> None:
        while self.pending and (self.pending[0].done() or len(self.pending) >= self.MAX_PENDING):
            self.pending.pop(0).result()  # re-raises a failed write
        self.pending.append(self.pool.submit(write, *args))

    def __exit__(self, exc_type, *exc) -> bool:
        self.pool.shutdown(wait=True)
        errors = [f.exception() for f in self.pending if f.exception() is not None]
        if errors and exc_type is None:
            raise errors[0]
        return False


class Checkpointer:
    """Writes checkpoint.pt at the end of an epoch once `every_s` seconds have passed since
    the last write (every_s=0: every epoch), and when the run stops. The state is copied
    off the live tensors only when a write is due, so epochs in between cost nothing; a hard
    kill loses at most every_s seconds, whose rows a resume drops and recomputes identically."""

    def __init__(self, path: Path, every_s: float, table: CsvAppender, clock: Callable[[], float] = time.monotonic):
        self.path, self.every_s, self.table, self.clock = path, every_s, table, clock
        self.last_write = clock()
        self.written_at: tuple | None = None  # (epoch, step) of the state last written

    def due(self) -> bool:
        return self.clock() - self.last_write >= self.every_s

    def write(self, writer: RunFolderWriter, position: tuple, snapshot: Callable[[], dict]) -> None:
        """The checkpoint and the metrics rows it covers reach the disk together; a position
        already written is not written again."""
        if position == self.written_at:
            return
        writer.submit(save_checkpoint, self.path, snapshot())
        writer.submit(self.table.sync)
        self.last_write, self.written_at = self.clock(), position


def start_run_folder(root: Path, name: str, config_yaml: str, summary: dict) -> Path:
    """A new run folder with config.yaml, the metrics header and a `running` summary; a
    machine that refuses any of them (a full disk) leaves no folder behind."""
    run_dir = new_run_dir(root, name)
    summary["run_dir"] = str(run_dir)
    try:
        write_atomic(run_dir / "config.yaml", config_yaml)
        CsvAppender(run_dir / "metrics.csv", METRIC_COLUMNS, durable=False)
        write_summary(run_dir / "summary.json", summary)
    except StorageError:
        for written in ("config.yaml", "metrics.csv", "summary.json"):
            (run_dir / written).unlink(missing_ok=True)
        remove_if_empty(run_dir)
        raise
    return run_dir


def check_not_running_elsewhere(run_dir: Path, previous: dict) -> None:
    """Two processes training one run folder would interleave their rows."""
    from runner.runs.folder import process_alive

    if previous.get("status") != "running" or previous.get("pid") == os.getpid():
        return
    alive = process_alive(previous)
    if alive:
        raise ConfigError(f"{run_dir}: still being trained by process {previous['pid']} on this machine; "
                          f"stop it (Ctrl-C or kill -TERM {previous['pid']}) before resuming")
    if alive is False:
        print(f"optlab: {run_dir} was interrupted (process gone); resuming it", file=sys.stderr)


def checkpoint_to_resume(run_dir: Path) -> dict | None:
    """The checkpoint a resume continues from, after clearing temp files a killed writer
    left; None when the run was stopped before its first checkpoint: it then starts over in
    its folder, which gives exactly the run it would have been (same config, same seed)."""
    for stale in remove_stale_temp_files(run_dir):
        print(f"optlab: removed {stale.name}, left by a writer that was stopped", file=sys.stderr)
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        print(f"optlab: {run_dir} has no checkpoint yet: starting it over from epoch 0", file=sys.stderr)
        return None
    return load_checkpoint(path)


def restore_checkpoint(ckpt: dict, path: Path, model, optimizer, scaler, generators: dict) -> None:
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt.get("scaler", scaler.state_dict()))
        restore_rng_states(ckpt["rng"], generators)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: does not match the run's config.yaml ({type(exc).__name__}: {detail})") from None


def drop_rows_after(run_dir: Path, epoch: int, fresh: bool) -> None:
    """Rows past the checkpoint are recomputed by the resume: drop them so none counts twice
    (layers.csv too; all of it when the run starts over, its first record included)."""
    truncate_after_epoch(run_dir / "metrics.csv", epoch)
    if (run_dir / "layers.csv").exists():
        truncate_after_epoch(run_dir / "layers.csv", -2 if fresh else epoch)


def _previous_summary(run_dir: Path) -> dict:
    """The summary a resume takes over (it is rewritten whole: a damaged one is replaced)."""
    try:
        return read_json(run_dir / "summary.json")
    except DataError:
        return {}
