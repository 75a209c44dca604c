"""SIGINT/SIGTERM during a run: a flag the loop checks after each step."""
from __future__ import annotations

import signal
from contextlib import contextmanager


class SignalFlag(list):
    """The signals received while a run was in charge of them; `consumed` once the run
    stopped because of one."""

    consumed = False


@contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set a flag the loop checks after each step, so the run ends cleanly
    at a step boundary with everything up to the last epoch on disk. The flag stays set up
    until the summary is written. A signal that came too late to stop the run (training was
    over) is passed on to the handler the caller had installed (a sweep worker's), or else
    left in the flag for the caller to act on (RunResult.late_signal)."""
    received = SignalFlag()

    def handler(signum, frame):
        received.append(signum)

    installed = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            installed[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. called from a thread pool)
            pass
    try:
        yield received
    finally:
        for sig, previous in installed.items():
            signal.signal(sig, previous)
        late = received[0] if received and not received.consumed else None
        if late in installed and callable(installed[late]) and installed[late] is not signal.default_int_handler:
            signal.raise_signal(late)
