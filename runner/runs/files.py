"""Files written whole or not at all: atomic rewrites, append-only CSV tables, JSON.

Nothing is left half-written: rewritten files go to a temp file then os.replace (the temp
file is removed when a write fails); each table row is one append that either lands whole or
is cut back off (a full disk writes short); readers skip a torn last line, and an appender
cuts one off before it appends. Writes the machine refuses (disk full, read-only folder)
raise StorageError naming the path.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

from optlab import faults
from optlab.errors import STORAGE_REASONS, ConfigError, DataError, StorageError, storage_error


def make_dirs(path: Path) -> Path:
    """mkdir -p, with the machine's refusal as a StorageError naming the path (a parent that
    holds no folders, such as /proc, answers that it does not exist)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except FileNotFoundError as exc:
        raise StorageError(f"{exc.filename or path}: a folder cannot be made there") from None
    except OSError as exc:
        raise storage_error(exc, exc.filename or path) or exc from None
    return Path(path)


_write = os.write  # the fault tests swap in a writer that writes short


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written: a write may take only part of its buffer
    (a filling disk does that before it raises ENOSPC)."""
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


_taken_over: dict[str, str] = {}  # folder (real path) -> why this process may not write into it


class RunTakenOver(ConfigError):
    """Another process holds the run folder's lease now (runs/lease.py): this one writes nothing more."""


def mark_taken_over(folder: Path, why: str) -> None:
    _taken_over[os.path.realpath(folder)] = why


def refuse_if_taken_over(path: Path) -> None:
    """Every write into a run folder goes through here: none into a folder taken over."""
    if _taken_over:
        why = _taken_over.get(os.path.realpath(Path(path).parent))
        if why is not None:
            raise RunTakenOver(why)


def temp_path(path: Path) -> Path:
    return Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")


def write_atomic(path: Path, data: bytes | str, fault_point: str = "write_atomic") -> None:
    """Replace `path` with `data` all at once: a temp file, fsynced, renamed over it. On
    failure the temp file is removed and the old file is untouched."""
    path, tmp = Path(path), temp_path(path)
    refuse_if_taken_over(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, data.encode() if isinstance(data, str) else data)
            faults.hit(fault_point, str(path))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise storage_error(exc, path) or exc from None


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def refuse_symlink(path: Path) -> None:
    """A folder or file optlab writes into must not be a symlink: a link planted there (a run
    folder from elsewhere, a shared parent folder) would send the writes anywhere."""
    if Path(path).is_symlink():
        raise StorageError(f"{path}: {STORAGE_REASONS[errno.ELOOP]} (it links to {os.readlink(path)})")


def open_no_follow(path: Path, flags: int) -> int:
    """os.open for writing that refuses a symlink at `path` (ELOOP, a StorageError)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise storage_error(exc, path) or exc from None


def rewrite_in_place(path: Path, text: str) -> None:
    """Last resort on a full disk, for a small file that exists: overwrite its bytes where
    they are (they already have their blocks), so the file still tells how things ended."""
    refuse_if_taken_over(path)
    with os.fdopen(open_no_follow(path, os.O_RDWR), "r+b") as f:
        f.write(text.encode())
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Temp files a killed writer left behind: never one whose writer (the pid in its name,
    temp_path's) is a live process on this machine, this one included."""
    stale = [path for path in sorted(Path(folder).glob(".*.tmp")) if not _writer_alive(path)]
    for path in stale:
        _remove(path)
    return stale


def _writer_alive(temp: Path) -> bool:
    pid = temp.name[:-len(".tmp")].rpartition(".")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def write_json(path: Path, obj: dict) -> None:
    write_atomic(path, json_text(obj))


def json_text(obj: dict) -> str:
    return json.dumps(obj, indent=2, default=_jsonable) + "\n"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "numel") and hasattr(value, "tolist"):  # a torch tensor
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None


class CsvAppender:
    """A CSV table that only grows, one complete row per write.

    A write that fails (a full disk writes part of a row, then refuses) is cut back to the
    last complete row and raises StorageError, so a torn row never sits inside the table;
    opening a table whose last line is torn (a writer killed mid-row) cuts that line off.

    durable=False leaves the fsync to `sync()`: a row is in the OS's hands (safe from
    Ctrl-C, SIGTERM and SIGKILL) once written; only a machine crash can lose rows written
    since the last sync, and the training loop syncs with every checkpoint, which is what a
    resume starts from anyway.
    """

    def __init__(self, path: Path, columns: Iterable[str], durable: bool = True):
        self.path, self.columns, self.durable = Path(path), list(columns), durable
        self.fd: int | None = None  # open only inside `with`: otherwise each write opens the file
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._write_line(self.columns)
        else:
            cut_torn_tail(self.path)

    def __enter__(self) -> "CsvAppender":
        """Keep the file open for the block (a training run): a write is then one syscall
        instead of three (open, write, close)."""
        self.fd = self._open()
        return self

    def __exit__(self, *exc) -> None:
        fd, self.fd = self.fd, None
        os.close(fd)

    def _open(self) -> int:
        return open_no_follow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def append(self, row: dict) -> None:
        self.append_many([row])

    def append_many(self, rows: list[dict]) -> None:
        """Several rows in one write and one fsync."""
        self._write_lines([[_format(row.get(c)) for c in self.columns] for row in rows])

    def _write_line(self, values: list) -> None:
        self._write_lines([values])

    def _write_lines(self, lines: list[list]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(lines)
        refuse_if_taken_over(self.path)
        fd = self.fd if self.fd is not None else self._open()
        try:
            complete = os.fstat(fd).st_size
            try:
                write_all(fd, buffer.getvalue().encode())
                faults.hit("table.append", str(self.path))
                if self.durable:
                    os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, complete)  # shrinking needs no space: the torn row goes
                raise storage_error(exc, self.path) or exc from None
        finally:
            if fd != self.fd:
                os.close(fd)

    def sync(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def cut_torn_tail(path: Path) -> bool:
    """Truncate a table to its last complete line; True when there was a torn one."""
    with os.fdopen(open_no_follow(path, os.O_RDWR), "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return False
        f.seek(max(0, size - 65536))
        tail = f.read()
        if tail.endswith(b"\n"):
            return False
        newline = tail.rfind(b"\n")
        f.truncate(size - len(tail) + newline + 1 if newline >= 0 else 0)
        return True


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return value


def complete_lines(text: str) -> tuple[list[str], bool]:
    """The lines of an appended table and whether a torn (unterminated) last line was dropped:
    a writer killed mid-row leaves one."""
    lines = text.splitlines(keepends=True)
    torn = bool(lines) and not lines[-1].endswith("\n")
    return (lines[:-1] if torn else lines), torn


def read_rows(path: Path) -> list[dict]:
    """Rows of an appended CSV table, skipping a torn (incomplete) last line."""
    lines, _ = complete_lines(Path(path).read_text())
    reader = csv.DictReader(lines)
    return [row for row in reader if None not in row and None not in row.values()]


def truncate_after_epoch(path: Path, epoch: int) -> None:
    """On resume: drop rows past the checkpoint's epoch (they are recomputed identically)."""
    if not Path(path).exists():
        return
    lines, torn = complete_lines(Path(path).read_text())
    if not lines:
        return
    reader = csv.DictReader(lines)
    rows = [row for row in reader if None not in row and None not in row.values()]
    keep = [r for r in rows if int(r["epoch"]) <= epoch]
    if len(keep) == len(rows) and not torn:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=reader.fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(keep)
    write_atomic(path, buffer.getvalue())
