"""Fault points: named moments where the fault-injection tests (tests/faults/) make a real
fault happen in a real process, exactly there, instead of sleeping and hoping.

    OPTLAB_FAULT="train.step@7=sigterm,sweep.after_ask=kill"

arms `train.step` to send SIGTERM to this process on its 7th hit, and `sweep.after_ask` to
SIGKILL it on its first. Actions: kill (SIGKILL), sigterm, sigint, enospc (raise the OSError
a full disk raises), wait (hold the process there until the file OPTLAB_FAULT_GATE exists,
for at most GATE_TIMEOUT_S, so a test can line processes up at a moment). With the variable
unset, `hit` is one dictionary lookup.
"""
from __future__ import annotations

import errno
import os
import signal
import time

ACTIONS = ("kill", "sigterm", "sigint", "enospc", "wait")
GATE_TIMEOUT_S = 120.0


def parse(text: str) -> dict[str, tuple[int, str]]:
    """'point[@n]=action,...' -> {point: (n, action)}."""
    plan = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        where, _, action = item.partition("=")
        name, _, nth = where.partition("@")
        if action not in ACTIONS:
            raise ValueError(f"OPTLAB_FAULT: {item!r}: action must be one of {', '.join(ACTIONS)}")
        plan[name] = (int(nth or 1), action)
    return plan


_plan = parse(os.environ.get("OPTLAB_FAULT", ""))
_hits: dict[str, int] = {}


def hit(point: str, path: str = "") -> None:
    """Count a pass through `point`; on the armed pass, make its fault happen."""
    if point not in _plan:
        return
    _hits[point] = _hits.get(point, 0) + 1
    nth, action = _plan[point]
    if _hits[point] != nth:
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path or point)
    if action == "wait":
        return _wait_for_gate(point)
    signum = {"kill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}[action]
    os.kill(os.getpid(), signum)


def _wait_for_gate(point: str) -> None:
    gate = os.environ.get("OPTLAB_FAULT_GATE", "")
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not (gate and os.path.exists(gate)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"OPTLAB_FAULT: {point}=wait: the gate {gate!r} did not open in {GATE_TIMEOUT_S:g} s")
        time.sleep(0.01)
