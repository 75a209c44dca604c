"""The two storages a sweep's workers use, each with optlab's stale-trial check (storage.py's
top says why): HeartbeatStorage (RDBStorage: SQLite, PostgreSQL) and JournalHeartbeatStorage
(Optuna's journal file, which has no heartbeat of its own). Each storage method rides out an
outage (outage.py). Defined at module level, so that they pickle as every Optuna storage does
(users hand storages to process pools and joblib); storage.py imports this module on first use."""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from optlab import faults
from optlab.errors import storage_error
from optlab.runs.files import write_all
from optlab.sweep.outage import rides_out_outages

BEAT_ATTR = "optlab.heartbeat"


class WholeLinesJournal(JournalFileBackend):
    """Optuna's journal file, whose appends land whole or not at all: an append the disk
    refuses part way (a full disk) is cut back to the last complete line and raised as a
    StorageError (exit 5), so the next append never follows a torn line."""

    def append_logs(self, logs: list[dict]) -> None:
        import json

        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with get_lock_file(self._lock):
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:  # unbuffered: no buffered remainder can land after the cut on close
                complete = os.fstat(fd).st_size
                write_all(fd, text.encode("utf-8"))
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, complete)
                raise storage_error(exc, self._file_path) or exc from None
            finally:
                os.close(fd)


@rides_out_outages
class HeartbeatStorage(optuna.storages.RDBStorage):
    """RDBStorage that also fails a RUNNING trial which never got a heartbeat row, once this
    process has seen it so for the grace period."""

    def __init__(self, *args, clock: Callable[[], float] = time.monotonic, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.silent_since: dict[int, float] = {}

    def _create_new_trial(self, study_id, template_trial=None):  # what study.ask calls, through Optuna's cache
        trial = super()._create_new_trial(study_id, template_trial)
        faults.hit("sweep.trial_created")
        return trial

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return super()._get_stale_trial_ids(study_id) + self._silent_past_grace(study_id)

    def _silent_past_grace(self, study_id: int) -> list[int]:
        now = self.clock()
        silent = self.running_without_heartbeat(study_id)
        self.silent_since = {t: self.silent_since.get(t, now) for t in silent}
        grace = self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval
        return [t for t, since in self.silent_since.items() if now - since > grace]

    def running_without_heartbeat(self, study_id: int) -> list[int]:
        return _running_without_heartbeat(self.scoped_session, study_id)


def _running_without_heartbeat(scoped_session, study_id: int) -> list[int]:
    """Ids of the study's RUNNING trials that have no heartbeat row."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trial, beat = models.TrialModel, models.TrialHeartbeatModel
    with _create_scoped_session(scoped_session) as session:
        rows = (session.query(trial.trial_id)
                .outerjoin(beat, beat.trial_id == trial.trial_id)
                .filter(trial.study_id == study_id, trial.state == TrialState.RUNNING, beat.trial_id.is_(None))
                .all())
    return [trial_id for (trial_id,) in rows]


@rides_out_outages
class JournalHeartbeatStorage(JournalStorage, BaseHeartbeat):
    """A journal file with a heartbeat: each running trial's BEAT_ATTR changes every beat, and
    a trial whose attribute this process has seen unchanged for the grace period is stale.
    Heartbeat and grace are positive whole seconds, or None, as RDBStorage takes them."""

    def __init__(self, backend, heartbeat: int | None, grace: int | None, on_stale: Callable | None,
                 clock: Callable[[], float] = time.monotonic):
        for name, value in (("heartbeat", heartbeat), ("grace", grace)):
            if value is not None and value <= 0:
                raise ValueError(f"The value of `{name}` should be a positive integer.")
        super().__init__(backend)
        self.heartbeat, self.grace, self.on_stale, self.clock = heartbeat, grace, on_stale, clock
        self.last_seen: dict[int, tuple[object, float]] = {}  # trial id -> (its beat, since when)

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())  # only its changing is read

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = self.clock()
        seen = {}
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(BEAT_ATTR)
            before = self.last_seen.get(t._trial_id)
            seen[t._trial_id] = before if before is not None and before[0] == beat else (beat, now)
        self.last_seen = seen
        grace = self.grace if self.grace is not None else 2 * (self.heartbeat or 1)
        return [trial_id for trial_id, (_, since) in seen.items() if now - since > grace]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat

    def get_heartbeat_stale_trial_callback(self):
        return self.on_stale
