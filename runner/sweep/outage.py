"""Riding out a storage outage, and a trial that stopped being this worker's.

Every call a worker makes to its study's storage goes through `call`: an error that means the
storage is away for now (a PostgreSQL restart's closed connection or refused connect, SQLite
locked past its busy timeout, a network filesystem's stale handle), or a call that does not
answer (a frozen server), is retried with growing pauses, saying so once, until the storage
answers again or OPTLAB_STORAGE_TIMEOUT seconds (default 60; `optlab sweep
--storage-timeout`) have passed since the outage began. Past that the process gives up:
StorageUnreachable stops the running trial at its epoch's end like a signal does (its
checkpoint written, its folder `interrupted`) and the sweep ends with exit 5; the rerun
resumes that trial's runs (storage.retry_stale_trial). A frozen server is timed with SIGALRM,
in the main thread only (a heartbeat thread's call is not the one a trial waits on).

A worker paused past the grace period (SIGSTOP, a suspended job, a closed laptop) finds on
waking that its trial was failed and queued again by another worker: Optuna refuses the
write (UpdateFinishedTrialError), which becomes TrialTakenOver. That too stops the run like a
signal, and the worker drops the trial with one line and goes on with the next one.
"""
from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

import optuna

from optlab.errors import Interrupted, StorageUnreachable, storage_error

TIMEOUT_ENV = "OPTLAB_STORAGE_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
TRANSIENT_ERRNOS = (errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EHOSTUNREACH,
                    errno.ENETUNREACH, errno.ESTALE, errno.EAGAIN)
STORAGE_METHODS = ("create_new_study", "create_new_trial", "delete_study", "get_all_studies", "get_all_trials",
                   "get_best_trial", "get_n_trials", "get_study_directions", "get_study_id_from_name",
                   "get_study_name_from_id", "get_study_system_attrs", "get_study_user_attrs", "get_trial",
                   "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
                   "get_trial_params", "get_trial_system_attrs", "get_trial_user_attrs", "set_study_system_attr",
                   "set_study_user_attr", "set_trial_intermediate_value", "set_trial_param",
                   "set_trial_state_values", "set_trial_system_attr", "set_trial_user_attr", "record_heartbeat",
                   "_get_stale_trial_ids", "_create_new_trial", "_get_best_trial_id", "_get_trials",
                   "_set_trial_param")  # the private ones: what Optuna's cache in front of RDBStorage calls


class TrialTakenOver(Interrupted, optuna.exceptions.UpdateFinishedTrialError):
    """This worker's trial was failed and queued again by another one while this one was
    paused: its run stops like an interrupted one, and the worker goes on. Still an
    UpdateFinishedTrialError, for Optuna's own handling of one."""

    def __init__(self, message: str):
        Exception.__init__(self, message)
        self.exit_code = 0


class _NoAnswer(Exception):
    """A storage call that did not return before the outage deadline (a frozen server)."""


def timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S


class _Outage:
    """This process's view of its storage: since when it has not answered (None: it does),
    and whether the process gave up on it."""

    def __init__(self):
        self.since: float | None = None
        self.given_up: str | None = None
        self.taken_over: TrialTakenOver | None = None  # the last one raised: Optuna's tell may hide it
        self.lock = threading.Lock()
        self.depth = threading.local()


_state = _Outage()


def call(method, *args, **kwargs):
    """method(*args, **kwargs), with the storage's outages ridden out (see the top)."""
    depth = getattr(_state.depth, "value", 0)
    if depth:  # a storage method calling another: the outer call retries
        return method(*args, **kwargs)
    _state.depth.value = 1
    try:
        return _retrying(method, *args, **kwargs)
    finally:
        _state.depth.value = 0


def _retrying(method, *args, **kwargs):
    pause = 0.5
    while True:
        if _state.given_up:
            raise StorageUnreachable(_state.given_up)
        try:
            result = _within(_time_left(), method, *args, **kwargs)
        except TrialTakenOver:
            raise
        except optuna.exceptions.UpdateFinishedTrialError as exc:  # still one: Optuna's own races stay handled
            _state.taken_over = TrialTakenOver(f"{exc} Another worker failed it and queued its configuration again "
                                               f"while this one was stopped past the grace period: this worker drops it")
            raise _state.taken_over from None
        except Exception as exc:  # noqa: BLE001  sorted out by _away_for_now
            if not _away_for_now(exc):
                raise
            _note_outage(exc)
            time.sleep(min(pause, max(0.0, _time_left())))
            pause = min(pause * 2, 5.0)
            continue
        _note_answer()
        return result


def _away_for_now(exc: BaseException) -> bool:
    """Whether the error means the storage is away for now. Optuna wraps SQLAlchemy's errors
    in StorageInternalError, and a call cut short by _NoAnswer may end in another error of
    the cleanup it interrupted: every link of the chain of causes is asked."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if _away(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _away(exc: BaseException) -> bool:
    if isinstance(exc, _NoAnswer):
        return True
    if storage_error(exc) is not None:  # a full disk, a read-only database: not going away by waiting
        return False
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS
    try:
        import sqlalchemy.exc
    except ImportError:
        return False
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                            sqlalchemy.exc.DisconnectionError))


def _time_left() -> float:
    since = _state.since if _state.since is not None else time.monotonic()
    return timeout_s() - (time.monotonic() - since)


def _note_outage(exc: BaseException) -> None:
    with _state.lock:
        if _state.since is None:
            _state.since = time.monotonic()
            cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ else exc
            reason = " ".join(str(cause).split("\n")[0].split())[:160] or type(cause).__name__
            print(f"optlab: the study's storage does not answer ({reason}); retrying for up to "
                  f"{timeout_s():g} s", file=sys.stderr, flush=True)
        if _time_left() <= 0:
            _state.given_up = (f"the study's storage did not answer for {timeout_s():g} s; the running trial "
                               f"stopped at its last epoch with a checkpoint: rerun the same command once the "
                               f"storage is back (finished trials are kept, the stopped one resumes)")


def _note_answer() -> None:
    with _state.lock:
        if _state.since is not None:
            print(f"optlab: the study's storage answers again (after {time.monotonic() - _state.since:.0f} s)",
                  file=sys.stderr, flush=True)
            _state.since = None


def _within(seconds: float, method, *args, **kwargs):
    """method(*args, **kwargs), or _NoAnswer once it has run `seconds` (a frozen server). The
    main thread's call is interrupted by SIGALRM; another thread's (Optuna's heartbeat, which
    a trial's end waits for) is left behind, stuck, in a daemon thread of its own."""
    if seconds <= 0:
        raise _NoAnswer("no time left")
    if threading.current_thread() is threading.main_thread():
        with _alarm(seconds):
            return method(*args, **kwargs)
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, method(*args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001  handed to the calling thread
            outcome.append((False, exc))

    helper = threading.Thread(target=run, name="optlab-storage-call", daemon=True)
    helper.start()
    helper.join(seconds)
    if not outcome:
        raise _NoAnswer(f"no answer in {seconds:.0f} s")
    done, value = outcome[0]
    if not done:
        raise value
    return value


@contextmanager
def _alarm(seconds: float):
    """Raise _NoAnswer in the main thread if the block runs past `seconds`."""
    def no_answer(signum, frame):
        raise _NoAnswer(f"no answer in {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, no_answer)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # again every second: a rollback on the way out may hang too
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def rides_out_outages(cls):
    """The storage class with each of its storage methods called through `call`. A heartbeat
    that cannot land is skipped: the trial's own next call meets the outage, or the takeover,
    and says so (a heartbeat thread's error would only be a traceback)."""
    for name in STORAGE_METHODS:
        method = getattr(cls, name, None)
        if method is None:
            continue

        def through_call(self, *args, __method=method, **kwargs):
            return call(functools.partial(__method, self), *args, **kwargs)

        def beat(self, *args, __method=method, **kwargs):
            try:
                return call(functools.partial(__method, self), *args, **kwargs)
            except (StorageUnreachable, TrialTakenOver):
                return None

        wrapper = beat if name == "record_heartbeat" else through_call
        functools.update_wrapper(wrapper, method)
        setattr(cls, name, wrapper)
    return cls


@contextmanager
def dropped_if_taken_over():
    """Around one trial of a worker: a trial taken over is dropped with one line and the
    worker goes on. When the storage failed (unreachable past the deadline, a full disk),
    Optuna's bookkeeping after the trial raises errors of its own (an AssertionError, an
    UnboundLocalError): the storage's failure is raised instead, as an OptlabError."""
    _state.taken_over = None
    try:
        yield
    except Exception as exc:
        cause = _cause_in_chain(exc) or _told_too_late(exc)
        if isinstance(cause, TrialTakenOver):
            print(f"optlab: {' '.join(str(cause).split())}", file=sys.stderr, flush=True)
            return
        if cause is None or cause is exc:
            raise
        raise cause from None


def _told_too_late(exc: BaseException) -> TrialTakenOver | None:
    """Optuna's tell of a trial that another worker finished meanwhile raises a ValueError
    ("Cannot tell a FAIL trial."), hiding the TrialTakenOver the trial's run stopped on, or
    standing alone when the paused worker woke with no write left before its tell."""
    if not (isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a")):
        return None
    return _state.taken_over or TrialTakenOver(f"{exc} Another worker finished it while this one was stopped "
                                               f"past the grace period: this worker drops it")


def _cause_in_chain(exc: BaseException):
    """The storage's failure in an exception's chain of causes (StorageUnreachable,
    TrialTakenOver, or a StorageError for an OSError the machine caused), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (StorageUnreachable, TrialTakenOver)):
            return exc
        if storage_error(exc) is not None:
            return storage_error(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
