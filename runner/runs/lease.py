"""One writer per run folder: a lease with a heartbeat, held from the moment a run claims its
folder (a new run, or a resume, before anything is read or written) until its final summary.

A lease is a file `.writer.<generation>` in the run folder, holding its writer's pid, host,
process start time and a beat that its process rewrites every BEAT_S seconds. It is made
with a hard link of a complete temp file, which fails when the name exists: atomic on NFSv3
and later, where fcntl locks are not to be trusted. The highest generation is the lease.

A second process that finds the lease held by a live process on its own host is refused
(exit 2). A lease of another host cannot be asked about its process: its beat is watched,
by this process's own clock (no clocks are compared across machines), and a beat that stays
the same for GRACE_S seconds means its writer is gone (killed, or paused past the grace).
A dead or silent writer's lease is taken over by creating the next generation, which only
one of several newcomers can do. A writer that finds a newer generation than its own (it
was paused while another host took over) has lost the run: from then on every write into
the folder is refused (runs/files.py), and the run ends with one line and exit 2.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from optlab import faults
from optlab.errors import ConfigError, StorageError, storage_error
from optlab.runs.files import mark_taken_over, temp_path, write_all, write_atomic

PREFIX = ".writer."
BEAT_S = 5.0     # seconds between a holder's beats
GRACE_S = 30.0   # a beat unchanged this long, seen from another host: its writer is gone

_held: dict[str, "Lease"] = {}  # run folder (real path) -> the lease this process holds
_lock = threading.Lock()
_beating: threading.Thread | None = None


class Lease:
    """This process's lease on one run folder."""

    def __init__(self, run_dir: Path, generation: int, record: dict):
        self.run_dir, self.generation, self.record = Path(run_dir), generation, record

    @property
    def path(self) -> Path:
        return self.run_dir / f"{PREFIX}{self.generation}"

    def beat(self) -> bool:
        """Rewrite the beat; False (and the folder marked taken over) when a newer generation
        exists: another process has the run now."""
        newest, _ = current(self.run_dir)
        if newest is not None and newest > self.generation:
            mark_taken_over(self.run_dir, f"another process took {self.run_dir} over while this one was stopped "
                                          f"past the lease's {GRACE_S:g} s grace; this one writes nothing more")
            return False
        self.record = {**self.record, "beat": self.record.get("beat", 0) + 1}
        write_atomic(self.path, json.dumps(self.record))
        return True


def writer_record(run_dir: Path) -> dict:
    """Who writes the folder, and which folder: its inode, the same on every NFS client and
    another one in a copy (a folder copied while its run trains is not that run)."""
    from optlab.runs.folder import process_record  # the one record of who a process is

    return {**process_record(), "folder_inode": os.stat(run_dir).st_ino, "beat": 0}


def current(run_dir: Path) -> tuple[int | None, dict | None]:
    """The highest generation in the folder and its record (None, None when none; a record
    that cannot be read is {})."""
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return None, None
    generations = [int(n[len(PREFIX):]) for n in names if n.startswith(PREFIX) and n[len(PREFIX):].isdigit()]
    if not generations:
        return None, None
    newest = max(generations)
    try:
        record = json.loads((Path(run_dir) / f"{PREFIX}{newest}").read_text())
    except (OSError, ValueError):
        record = {}
    return newest, record if isinstance(record, dict) else {}


def claim(run_dir: Path, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Lease:
    """This process's lease on the run folder, or a ConfigError naming the live writer."""
    run_dir = Path(run_dir)
    key = os.path.realpath(run_dir)
    if key in _held:
        return _held[key]
    while True:
        generation, record = current(run_dir)
        if generation is not None and not writer_gone(run_dir, record, generation, clock, sleep):
            raise held_by(run_dir, record)
        lease = Lease(run_dir, 0 if generation is None else generation + 1, writer_record(run_dir))
        if _create(lease):
            break  # else another newcomer took that generation first: look again
    _drop_older(lease)
    with _lock:
        _held[key] = lease
    _start_beating()
    faults.hit("run.claimed")
    return lease


def writer_gone(run_dir: Path, record: dict, generation: int, clock, sleep) -> bool:
    """Whether the lease's writer is gone: a dead process on this host, an unreadable record,
    a record copied from another folder, or (another host) a beat that stays the same for
    GRACE_S seconds."""
    from optlab.runs.folder import process_alive

    if not record.get("host") or record.get("folder_inode") not in (None, os.stat(run_dir).st_ino):
        return True
    alive = process_alive(record)
    if alive is not None:
        return not alive
    print(f"optlab: {run_dir} is leased by process {record.get('pid')} on {record.get('host')}; "
          f"waiting up to {GRACE_S:g} s for a sign of life", file=sys.stderr)
    since = clock()
    while clock() - since < GRACE_S:
        sleep(1.0)
        now_generation, now = current(run_dir)
        if now_generation != generation or now.get("beat") != record.get("beat"):
            return False
    return True


def held_by(run_dir: Path, record: dict) -> ConfigError:
    pid, host = record.get("pid"), record.get("host")
    return ConfigError(f"{run_dir}: still being trained by process {pid} on {host} (two writers would interleave "
                       f"its rows); stop it (Ctrl-C, or kill -TERM {pid} on {host}) before resuming, or wait for "
                       f"it to end")


def _create(lease: Lease) -> bool:
    """Write the record to a temp file and hard-link it to the lease's name: False when the
    name exists already."""
    tmp = temp_path(lease.path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, json.dumps(lease.record).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, lease.path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise storage_error(exc, lease.path) or exc from None
    finally:
        tmp.unlink(missing_ok=True)


def _drop_older(lease: Lease) -> None:
    for name in os.listdir(lease.run_dir):
        rest = name[len(PREFIX):]
        if name.startswith(PREFIX) and rest.isdigit() and int(rest) < lease.generation:
            (lease.run_dir / name).unlink(missing_ok=True)


def release(run_dir: Path) -> None:
    """Give up this process's lease on the folder (nothing when it holds none)."""
    with _lock:
        lease = _held.pop(os.path.realpath(run_dir), None)
    if lease is None:
        return
    newest, _ = current(lease.run_dir)
    if newest == lease.generation:
        lease.path.unlink(missing_ok=True)


@contextmanager
def released_on_error():
    """Leases claimed inside the block are given back if it raises (a resume refused after
    its claim: a damaged checkpoint)."""
    before = set(_held)
    try:
        yield
    except BaseException:
        for key in set(_held) - before:
            release(Path(key))
        raise


def _start_beating() -> None:
    global _beating
    if _beating is None or not _beating.is_alive():
        _beating = threading.Thread(target=_beat_forever, name="optlab-lease", daemon=True)
        _beating.start()


def _beat_forever() -> None:
    while True:
        time.sleep(BEAT_S)
        with _lock:
            leases = list(_held.values())
        for lease in leases:
            try:
                if not lease.beat():
                    release_lost(lease)
            except (StorageError, OSError):  # a full disk, a folder gone: the run itself will say so
                pass


def release_lost(lease: Lease) -> None:
    with _lock:
        _held.pop(os.path.realpath(lease.run_dir), None)
