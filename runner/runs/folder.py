"""The run folder: config.yaml, metrics.csv, summary.json, checkpoint.pt, and who writes it."""
from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path

from runner.errors import DataError, StorageError, storage_error
from runner.runs.files import (
    json_text,
    make_dirs,
    read_json,
    remove_stale_temp_files,
    rewrite_in_place,
    write_atomic,
    write_json,
)

METRIC_COLUMNS = ["epoch", "step", "lr", "batch_size", "train_loss", "train_acc", "val_loss",
                  "val_acc", "grad_norm", "epoch_time_s", "samples_per_s"]


def new_run_dir(root: Path, name: str) -> Path:
    """outputs/runs/<timestamp>-<name>/, unique even when workers start in the same second."""
    make_dirs(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        suffix = f"-{attempt}" if attempt else ""
        path = root / f"{stamp}-{safe_name(name)}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise storage_error(exc, path) or exc from None
    raise DataError(f"{root}: could not create a unique run folder")


def remove_if_empty(folder: Path) -> None:
    """Undo a run folder that could not get its first file (a disk full from the start)."""
    try:
        for leftover in Path(folder).glob(".*.tmp"):
            leftover.unlink()
        Path(folder).rmdir()
    except OSError:
        pass


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in str(name))[:120]


def write_summary(path: Path, summary: dict) -> None:
    """summary.json, atomically; when the disk is too full for a temp file, in place."""
    try:
        write_json(path, summary)
    except StorageError:
        if not Path(path).exists():
            raise
        rewrite_in_place(path, json_text(summary))


def close_orphan_run(run_dir: Path) -> None:
    """A run whose process is known to be dead (its sweep worker's heartbeat stopped): remove
    the temp files it left and mark a `running` summary interrupted, so the folder tells
    how it ended."""
    if not Path(run_dir).is_dir():
        return
    remove_stale_temp_files(run_dir)
    try:
        summary = read_json(Path(run_dir) / "summary.json")
    except DataError:
        return
    if summary.get("status") == "running":
        write_summary(Path(run_dir) / "summary.json",
                      {**summary, "status": "interrupted", "reason": "its process is gone (the sweep worker died)"})


def process_record() -> dict:
    """Who is writing a run: enough to tell later whether that process is still alive."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_started": process_start(os.getpid())}


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(summary: dict) -> bool | None:
    """Whether the process a `running` summary names is alive; None when it ran on another
    host (or an older optlab wrote no pid), which this machine cannot tell."""
    pid, host = summary.get("pid"), summary.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = summary.get("pid_started")
    return started is None or process_start(pid) in (None, started)


def save_checkpoint(path: Path, state: dict) -> None:
    """Serialized in memory first, so a full disk surfaces as the OSError of our own write
    (torch's file writer reports it as an internal assertion) and no temp file is left."""
    import torch  # imported here so that reading run folders (optlab report) never loads torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getbuffer(), fault_point="checkpoint.write")


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no checkpoint to resume from") from None
    except Exception as exc:
        raise DataError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
