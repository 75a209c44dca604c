"""The sweep's one signal handler: SIGINT/SIGTERM set a flag checked at safe points."""
from __future__ import annotations

import signal

from runner.errors import Interrupted

_received: list[int] = []


def stop_on_signals() -> dict:
    """SIGINT/SIGTERM set a flag that the worker checks at safe points (before a trial, before
    each run, after each epoch); during training train() handles them itself. Raising from
    the handler instead could land inside Hydra or Optuna, which would record it as an
    ordinary trial error. Returns the previous handlers (for restore_signals)."""
    _received.clear()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda signum, frame: _received.append(signum))
    return previous


def restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def check_stop() -> None:
    if _received:
        raise Interrupted(_received[0])
