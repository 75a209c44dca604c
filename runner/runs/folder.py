"""The run folder: config.yaml, metrics.csv, summary.json, checkpoint.pt, best.pt, model.pt, and who writes it."""
from __future__ import annotations

import io
import math
import os
import socket
import sys
import time
from pathlib import Path

from optlab.errors import ConfigError, DataError, StorageError, storage_error
from optlab.runs import lease
from optlab.runs.files import (
    CsvAppender,
    complete_lines,
    json_text,
    make_dirs,
    read_json,
    read_rows,
    refuse_symlink,
    remove_stale_temp_files,
    rewrite_in_place,
    truncate_after_epoch,
    write_atomic,
    write_json,
)
from optlab.runs.status import Status

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
    lease.release(folder)
    try:
        for leftover in Path(folder).glob(".*.tmp"):
            leftover.unlink()
        Path(folder).rmdir()
    except OSError:
        pass


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in str(name))[:120]


def write_summary(path: Path, summary: dict, ends_run: bool | None = None) -> None:
    """summary.json, atomically; when the disk is too full for a temp file, in place. A final
    summary (any status but running, unless ends_run says otherwise: an extension's, written
    before the run goes on) ends the run: its writer's lease is given back."""
    try:
        write_json(path, summary)
    except StorageError:
        if not Path(path).exists():
            raise
        rewrite_in_place(path, json_text(summary))
    if ends_run if ends_run is not None else summary.get("status") != Status.RUNNING:
        lease.release(Path(path).parent)


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
    if summary.get("status") == Status.RUNNING:
        write_summary(Path(run_dir) / "summary.json",
                      {**summary, "status": Status.INTERRUPTED, "reason": "its process is gone (the sweep worker died)"})


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
    """checkpoint.pt, atomically (the fault point `checkpoint.write`)."""
    save_torch_file(path, state, fault_point="checkpoint.write")


def save_torch_file(path: Path, state: dict, fault_point: str = "write_atomic") -> None:
    """Serialized in memory first, so a full disk surfaces as the OSError of our own write
    (torch's file writer reports it as an internal assertion) and no temp file is left."""
    import torch  # imported here so that reading run folders (optlab report) never loads torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getbuffer(), fault_point=fault_point)


def load_checkpoint(path: Path) -> dict:
    return _torch_load(path, missing="no checkpoint to resume from", kind="unreadable checkpoint")


def load_model_file(path: Path) -> dict:
    """model.pt (or best.pt) as `torch.load(path, weights_only=True)` reads it: plain
    containers and tensors only."""
    return _torch_load(path, missing="not found (model.pt is written when a run completes)", kind="unreadable")


def _torch_load(path: Path, missing: str, kind: str) -> dict:
    """A .pt file with torch's weights-only unpickler: tensors, plain containers and numbers,
    and the numpy types of the RNG state a checkpoint holds. Run folders come from elsewhere
    (a downloaded run to fine-tune from), and a full unpickler runs whatever code a pickle
    names; a file that needs any other object is refused."""
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_rng_state_types()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except Exception as exc:
        refused = _refused_global(str(exc))
        if refused:
            raise DataError(f"{path}: refused: it asks to load {refused}, which is not a tensor or a plain value "
                            f"(optlab never writes one; loading it could run code from the file)") from None
        raise DataError(f"{path}: {kind} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None


def _refused_global(message: str) -> str | None:
    """The object torch's weights-only unpickler refused, from its error message."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"but got <class '([^']+)'>", message)
    return found.group(1) if found else None


def _numpy_rng_state_types() -> list:
    """What numpy's RNG state (checkpoint["rng"]["numpy"], a uint32 key array) pickles as,
    under numpy 2's module names and numpy 1's."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype,
            *{type(np.dtype(code)) for code in ("u4", "i4", "u8", "i8", "f4", "f8", "b1")}]


def start_run_folder(root: Path, name: str, config_yaml: str, summary: dict, columns=()) -> Path:
    """A new run folder with config.yaml, the metrics header (METRIC_COLUMNS and `columns`)
    and a `running` summary; a machine that refuses any of them (a full disk) leaves no
    folder behind."""
    run_dir = new_run_dir(root, name)
    summary["run_dir"] = str(run_dir)
    try:
        lease.claim(run_dir)
        write_atomic(run_dir / "config.yaml", config_yaml)
        CsvAppender(run_dir / "metrics.csv", METRIC_COLUMNS + list(columns), durable=False)
        write_summary(run_dir / "summary.json", summary)
    except StorageError:
        for written in ("config.yaml", "metrics.csv", "summary.json"):
            (run_dir / written).unlink(missing_ok=True)
        remove_if_empty(run_dir)
        raise
    return run_dir


def check_not_running_elsewhere(run_dir: Path, previous: dict) -> None:
    """Two processes training one run folder would interleave their rows: the folder's lease
    is claimed (runs/lease.py), and a run folder from before leases is checked by its summary."""
    lease.claim(run_dir)
    if previous.get("status") != Status.RUNNING or previous.get("pid") == os.getpid():
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
    refuse_links_inside(run_dir)
    for stale in remove_stale_temp_files(run_dir):
        print(f"optlab: removed {stale.name}, left by a writer that was stopped", file=sys.stderr)
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        print(f"optlab: {run_dir} has no checkpoint yet: starting it over from epoch 0", file=sys.stderr)
        return None
    return load_checkpoint(path)


def refuse_links_inside(run_dir: Path) -> None:
    """A run folder to resume holds no symlink (metrics.csv linked to another run's would take
    this run's rows): every write into it stays inside it."""
    for folder, dirnames, filenames in os.walk(run_dir):
        for name in sorted(dirnames + filenames):
            refuse_symlink(Path(folder) / name)


def drop_rows_after(run_dir: Path, epoch: int, fresh: bool) -> None:
    """Rows past the checkpoint are recomputed by the resume: drop them so none counts twice
    (layers.csv too; all of it when the run starts over, its first record included)."""
    for table in ("metrics.csv", "layers.csv"):
        if (run_dir / table).exists():
            check_table(run_dir / table)
    truncate_after_epoch(run_dir / "metrics.csv", epoch)
    if (run_dir / "layers.csv").exists():
        truncate_after_epoch(run_dir / "layers.csv", -2 if fresh else epoch)


def read_metric_rows(run_dir: Path) -> list[dict]:
    """metrics.csv's complete rows, one per finished epoch (a torn last line, left by a
    writer that was killed, is skipped), numbers as floats and an empty cell as NaN."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return []
    return [{k: float(v) if v != "" else math.nan for k, v in row.items()} for row in read_rows(path)]
def check_table(path: Path) -> None:
    """A table a resume reads back: text, with an epoch column, each complete row's epoch a
    whole number and every other cell a number or empty (layers.csv's layer names aside);
    else a DataError naming the line."""
    import csv

    try:
        lines, _ = complete_lines(path.read_bytes().decode("utf-8"))
        reader = csv.reader(lines)
        header = next(reader, [])
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: damaged, not a CSV table ({type(exc).__name__}: {exc})") from None
    if "epoch" not in header:
        raise DataError(f"{path}: damaged, no epoch column in its header")
    numeric = [i for i, name in enumerate(header) if name not in TEXT_COLUMNS]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            continue  # a row of another width is skipped by every reader
        bad = next((i for i in numeric if not _is_number(row[i], whole=header[i] == "epoch")), None)
        if bad is not None:
            raise DataError(f"{path}: damaged, line {number}: {header[bad]} {row[bad]!r} is not a number")


TEXT_COLUMNS = ("layer", "kind", "name")  # layers.csv's columns that are names


def _is_number(cell: str, whole: bool) -> bool:
    if cell == "":
        return not whole
    try:
        int(cell) if whole else float(cell)
    except ValueError:
        return False
    return True


def previous_summary(run_dir: Path) -> dict:
    """The summary a resume takes over (it is rewritten whole: a damaged one is replaced)."""
    try:
        return read_json(run_dir / "summary.json")
    except DataError:
        return {}
