"""The sweep's one signal contract, for the in-process worker, spawned workers and the pool.

While installed, SIGINT/SIGTERM are recorded (and, for the pool, passed on to its workers),
never raised from the handler: raising there could land inside Hydra or Optuna, which would
record it as an ordinary trial error. Code acts on a recorded signal at safe points:
check_stop() (before a trial, before each run, after each epoch) raises Interrupted, and
stop_signal() says which signal came first. During training, train() handles the signals
itself (optlab.training.signals) and passes a late one on to this handler.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Callable
from contextlib import contextmanager

from optlab.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


_received: list[int] = []


def install_stop_handlers(forward: Callable[[int], None] | None = None) -> dict:
    """Record SIGINT/SIGTERM from now on (forgetting earlier ones), and call forward(signum)
    for each; returns the previous handlers, for restore_handlers."""
    _received.clear()

    def handler(signum, frame):
        _received.append(signum)
        if forward is not None:
            forward(signum)

    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


def restore_handlers(previous: dict) -> None:
    """The handlers from before, and the record forgotten: a later check_stop() outside the
    handlers (a test calling a worker's pieces, say) sees no signal of an earlier sweep."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    _received.clear()


@contextmanager
def stop_handlers(forward: Callable[[int], None] | None = None):
    """install_stop_handlers for the duration of the block."""
    previous = install_stop_handlers(forward)
    try:
        yield
    finally:
        restore_handlers(previous)


def stop_signal() -> int | None:
    """The first signal recorded since the handlers were installed, if any."""
    return _received[0] if _received else None


def check_stop() -> None:
    if _received:
        raise Interrupted(_received[0])


def preemption_signal() -> int:
    """submitit's preemption signal (SUBMITIT_PREEMPT_SIGNAL, default USR2), which Slurm sends
    every process of a task `signal_delay_s` before its time limit."""
    return getattr(signal, f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}", signal.SIGUSR2)
