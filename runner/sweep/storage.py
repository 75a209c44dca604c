"""Where a sweep's study lives: the one storage opener (for workers, and read-only for
reports), and the stale-trial check.

By default the study lives in `outputs/sweeps/<study>/study.db`, an SQLite file opened through
Optuna's RDBStorage. SQLite rather than the journal file: Optuna's heartbeat (which finds
trials left RUNNING by a worker that died and fails them, so that their configuration is
retried) is implemented by RDBStorage only, and SQLite's own file locking (with a 60 s busy
timeout) is safe for several processes on one machine. The same code serves
`--storage postgresql://...` for workers on several machines.

Optuna's stale check skips a RUNNING trial that has no heartbeat row yet: a worker killed
between creating a trial (`study.ask()`, where the sampler runs) and its first heartbeat
leaves one behind, and every later worker would wait for it forever. HeartbeatStorage also
fails such a trial once it has stayed without a heartbeat for the grace period, timed by
this process's own clock from when it first saw the trial (no clock is compared across
machines).

Reading (`optlab report`) opens with `existing_in=SWEEP_FOLDER`: nothing is created, so the
SQLite file (or the Optuna journal file a path names) must exist; it is also looked for in
the sweep folder, so a moved sweep folder still finds its study.

`journal:PATH` is Optuna's journal file (JournalStorage), for clusters with a shared filesystem
and no database server. It is locked with JournalFileOpenLock (a lock file created with
O_CREAT|O_EXCL, atomic on NFSv3 and later), never with fcntl, which many NFS servers break.
Optuna gives the journal no heartbeat; JournalHeartbeatStorage adds one: each running trial's
`optlab.heartbeat` attribute changes every heartbeat, and a trial whose attribute this process
has seen unchanged for the grace period (by its own clock, again) is stale. SQLite on a
network filesystem is refused: its locks rely on that same fcntl (Optuna's FAQ warns).
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from optlab.errors import ConfigError, DataError

JOURNAL = "journal:"


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                       "fuse.sshfs", "fuse.glusterfs", "fuse.ceph", "9p", "afs", "panfs", "wekafs")


def default_storage(sweep_dir: Path, launcher: str = "local") -> str:
    """SQLite in the sweep folder; a journal file there for Slurm, whose workers run on other
    nodes and share the sweep folder over a network filesystem, where SQLite is unsafe."""
    if launcher == "slurm":
        return f"{JOURNAL}{(Path(sweep_dir) / 'study.journal').resolve()}"
    return f"sqlite:///{(Path(sweep_dir) / 'study.db').resolve()}"


def network_filesystem(path: Path, mounts: str | None = None) -> str | None:
    """The network filesystem type path lies on (the deepest mount in /proc/mounts holding
    it), or None for a local one or when the mounts cannot be read."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    where = str(Path(path).resolve())
    best, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind if kind in NETWORK_FILESYSTEMS else None


def refuse_sqlite_on_network(url: str, mounts: str | None = None) -> None:
    path = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None
    if path is None:
        return
    kind = network_filesystem(path.parent, mounts)
    if kind is not None:
        raise ConfigError(f"--storage {url}: SQLite on a network filesystem ({kind}) corrupts studies (its locks "
                          f"do not work there); use --storage journal:{path.with_suffix('.journal')} or postgresql://...")


def hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def open_storage(url: str, *, existing_in: Path | None = None, heartbeat: int | None = None,
                 grace: int | None = None, tries: int = 5, clock: Callable[[], float] = time.monotonic,
                 on_stale: Callable | None = None):
    """The study's storage for url. With heartbeat, stale RUNNING trials fail and go to
    on_stale(study, trial) (default: requeue). With existing_in, read-only use: nothing is
    created (see the top of this module)."""
    if existing_in is not None:
        url = _existing_location(url, Path(existing_in))
        if "://" not in url:
            return _journal_storage(url.removeprefix(JOURNAL))
    stale = (on_stale or requeue) if heartbeat else None
    if url.startswith(JOURNAL):
        return open_journal(url, heartbeat, grace, stale, clock)
    if not url.startswith(("sqlite", "postgresql", "mysql")):
        raise ConfigError(f"--storage {hide_password(url)}: give a sqlite:///FILE, journal:FILE or postgresql://... URL")
    make = heartbeat_storage_class()
    if url.startswith("sqlite"):
        refuse_sqlite_on_network(url)
        sqlite_write_ahead_log()
    return _retrying_creation_race(url, tries, lambda connect: make(  # pre-ping: no dead pooled connection after a restart
        url, engine_kwargs={"connect_args": connect, "pool_pre_ping": True}, heartbeat_interval=heartbeat,
        grace_period=grace, heartbeat_stale_trial_callback=stale, clock=clock))


_wal_listening = False


def sqlite_write_ahead_log() -> None:
    """SQLite studies in write-ahead-log mode with synchronous=NORMAL: a commit (several per
    trial) appends to the log instead of waiting for an fsync of the database. A process
    killed at any moment loses nothing committed; a power cut can lose the last commits,
    whose trials are then run again (the heartbeat check fails them)."""
    global _wal_listening
    if _wal_listening:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(connection, record) -> None:
        if isinstance(connection, sqlite3.Connection):
            cursor = connection.cursor()
            # WAL is a property of the file: set once (the switch needs the file alone, so a
            # second process starting meanwhile would see "database is locked")
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    _wal_listening = True


def _retrying_creation_race(url: str, tries: int, make: Callable):
    """Workers that start together on a fresh database race to create Optuna's tables; the
    loser sees a duplicate-key error (or, on SQLite, a lock that its busy timeout does not
    wait for: two readers both upgrading to write), and simply tries again."""
    import sqlalchemy.exc

    connect = {"timeout": 60} if url.startswith("sqlite") else {"connect_timeout": 10}
    for attempt in range(tries):
        try:
            return make(connect)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
            # PostgreSQL reports the race as a duplicate key, SQLite as "table ... already exists"
            if attempt + 1 == tries or not _creation_race(exc):
                raise _unreachable(url, exc) from None
            time.sleep(0.5 * (attempt + 1))


def _existing_location(url: str, folder: Path) -> str:
    """url with its SQLite file found (else DataError); a server URL as is; a journal file's path."""
    if url.startswith("sqlite:///"):
        return f"sqlite:///{_existing_file(Path(url[len('sqlite:///'):]), folder)}"
    if "://" in url:
        return url
    return str(_existing_file(Path(url.removeprefix(JOURNAL)), folder))


def _existing_file(path: Path, folder: Path) -> Path:
    for candidate in (path, folder / path, folder / path.name):
        if candidate.is_file():
            return candidate
    raise DataError(f"storage file {path} not found (also looked in {folder})")


def _journal_storage(path: str):
    """A journal opened for reading: no heartbeat, outages ridden out."""
    return journal_heartbeat_class()(journal_backend(path), heartbeat=None, grace=None, on_stale=None)


def journal_backend(path: str):
    """The journal file, locked with the lock that works on NFS (see the top of this module)."""
    from optuna.storages.journal import JournalFileOpenLock

    from optlab.sweep.heartbeat import WholeLinesJournal

    return WholeLinesJournal(path, lock_obj=JournalFileOpenLock(path))


def repair_journal(path: Path) -> None:
    """A journal whose last line is torn (a writer killed mid-append, a disk that filled up,
    a truncated copy) gets it cut off under the journal's lock before anything appends after
    it (which would leave a line no reader can parse, for good). The cut bytes go to
    PATH.torn, and one line says so; every complete line, every trial, stays."""
    from optuna.storages.journal import JournalFileOpenLock
    from optuna.storages.journal._file import get_lock_file

    from optlab.runs.files import cut_torn_tail

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with get_lock_file(JournalFileOpenLock(str(path))):
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
        if tail.endswith(b"\n"):
            return
        torn = tail[tail.rfind(b"\n") + 1:] if b"\n" in tail else tail
        side = path.with_name(path.name + ".torn")
        with open(side, "ab") as f:
            f.write(torn + b"\n")
            f.flush()
            os.fsync(f.fileno())
        cut_torn_tail(path)
    print(f"optlab: {path}: cut a torn last line ({len(torn)} bytes, a write that was cut short) before "
          f"appending; the bytes are kept in {side}", file=sys.stderr)


def open_journal(url: str, heartbeat: int | None, grace: int | None, on_stale: Callable | None,
                 clock: Callable[[], float] = time.monotonic):
    """A journal file's storage, with the heartbeat described at the top; its folder must exist
    and be writable (checked here, so an unreachable one stops the sweep before it starts)."""
    path = Path(url[len(JOURNAL):]).expanduser()
    if not path.parent.is_dir():
        raise ConfigError(f"--storage {url}: cannot open the storage (folder {path.parent} does not exist)")
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ConfigError(f"--storage {url}: cannot open the storage ({exc.strerror})") from None
    repair_journal(path)
    return journal_heartbeat_class()(journal_backend(str(path)), heartbeat=heartbeat, grace=grace,
                                     on_stale=on_stale, clock=clock)


def journal_heartbeat_class():
    """JournalStorage with a heartbeat (see the top of this module; sweep/heartbeat.py)."""
    from optlab.sweep.heartbeat import JournalHeartbeatStorage

    return JournalHeartbeatStorage


def _creation_race(exc: Exception) -> bool:
    text = str(exc).lower()
    return "duplicate" in text or "already exists" in text or "unique" in text or "database is locked" in text


def _unreachable(url: str, exc: Exception) -> ConfigError:
    from optlab.errors import storage_error

    fault = storage_error(exc, hide_password(url))
    if fault is not None:
        return fault
    reason = " ".join(str(exc).split("\n")[0].split())[:200]
    return ConfigError(f"--storage {hide_password(url)}: cannot open the storage ({reason})")


def retry_stale_trial(study, trial, sweep_dir: Path) -> None:
    """A trial whose worker is gone (its heartbeat stopped): its configuration queued again,
    and its run folders closed (temp files removed, a `running` summary marked interrupted).
    Runs that stopped cleanly (a storage outage past its deadline stopped them as a signal
    does: `interrupted`, with a checkpoint) are resumed; a killed worker's start over."""
    from optlab.runs.files import read_json
    from optlab.runs.folder import close_orphan_run

    runs = [Path(sweep_dir) / run for run in trial.user_attrs.get("run_dirs", [])]

    def stopped_cleanly(run: Path) -> bool:
        try:
            return read_json(run / "summary.json").get("status") == "interrupted" and (run / "checkpoint.pt").is_file()
        except DataError:
            return False

    requeue(study, trial, resume=bool(runs) and all(map(stopped_cleanly, runs)))
    for run in runs:
        close_orphan_run(run)


def retry_trials_of_gone_workers(study, sweep_dir: Path) -> int:
    """When every worker of a sweep is known to be gone (its Slurm tasks have all ended), its
    RUNNING trials are failed and retried as a stale check would (retry_stale_trial), rather
    than shown as running; how many."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    gone = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in gone:
        try:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:  # a worker finished it meanwhile after all
            continue
        retry_stale_trial(study, study._storage.get_trial(trial._trial_id), sweep_dir)
    return len(gone)


def requeue(study, trial, resume: bool = False) -> None:
    """Heartbeat-stale callback: run the dead trial's configuration again. A trial that died
    before sampling anything has no configuration to repeat: the next ask samples afresh.
    With resume (a trial stopped cleanly by a signal), the retry continues the trial's run
    folders from their checkpoints instead of starting them over."""
    if trial.params:
        resumed = {"resume_dirs": list(trial.user_attrs.get("run_dirs", []))} if resume else {}
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, **resumed})


def heartbeat_storage_class():
    """RDBStorage with the stale check described at the top (sweep/heartbeat.py, imported on
    first use: optuna and sqlalchemy take a second to import, which `optlab train` does not pay)."""
    from optlab.sweep.heartbeat import HeartbeatStorage

    return HeartbeatStorage
