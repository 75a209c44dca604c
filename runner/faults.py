"""Fault points: named moments where the fault-injection tests (tests/faults/) make a real
fault happen in a real process, exactly there, instead of sleeping and hoping.

    OPTLAB_FAULT="train.step@7=sigterm,sweep.before_ask=kill"

arms `train.step` to send SIGTERM to this process on its 7th hit, and `sweep.before_ask` to
SIGKILL it on its first (POINTS names every point). Actions: kill (SIGKILL), sigterm, sigint, enospc (raise the OSError
a full disk raises), wait (hold the process there until the file OPTLAB_FAULT_GATE exists,
for at most GATE_TIMEOUT_S, so a test can line processes up at a moment). With the variable
unset, `hit` is one dictionary lookup. The variable is read on first use, and the command
line checks it before a command starts: a value that does not parse, or names an unknown point
or action, is one line and exit 2.
"""
from __future__ import annotations

import errno
import os
import signal
import time

from optlab.errors import ConfigError, choose_from

ACTIONS = ("kill", "sigterm", "sigint", "enospc", "wait")
GATE_TIMEOUT_S = 120.0

# Every point a process passes through, and where (a test checks the code names no other).
POINTS = {
    "train.step": "after each training step, before the signal check",
    "train.epoch_end": "after an epoch's metrics row is appended",
    "train.after_loop": "after the last epoch, before summary.json",
    "population.step": "after each step of a population",
    "table.append": "after a table row is written, before its fsync",
    "checkpoint.write": "while checkpoint.pt's temp file is written",
    "write_atomic": "while any other file's temp file is written",
    "sweep.before_ask": "before a sweep worker asks for a trial",
    "sweep.trial_created": "after a trial is created, before its first heartbeat",
    "sweep.trials_csv": "while trials.csv's temp file is written",
    "cli.shutdown": "in the interpreter's shutdown, after the command",
    "run.claimed": "right after a run claims its folder's lease, before it reads or writes anything",
    "pbt.commit": "after a PBT round's checkpoints and event rows are written, before pbt.json commits them",
}


class FaultPlanError(ConfigError):
    """OPTLAB_FAULT does not parse, or names an unknown point or action."""

    def __init__(self, detail: str):
        super().__init__(f"OPTLAB_FAULT: {detail}")


def parse(text: str) -> dict[str, tuple[int, str]]:
    """'point[@n]=action,...' -> {point: (n, action)}; FaultPlanError names what is wrong."""
    plan = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        where, _, action = item.partition("=")
        name, _, nth = where.partition("@")
        if name not in POINTS:
            raise FaultPlanError(f"{item!r}: unknown point {name!r}; {choose_from(name, POINTS)} "
                                 "(written point[@n]=action)")
        if action not in ACTIONS:
            raise FaultPlanError(f"{item!r}: unknown action {action!r}; {choose_from(action, ACTIONS)}")
        if nth and not (nth.isdigit() and int(nth) >= 1):
            raise FaultPlanError(f"{item!r}: @{nth}: the pass to act on is a whole number >= 1")
        plan[name] = (int(nth or 1), action)
    return plan


_plan: dict[str, tuple[int, str]] | None = None  # parsed on first use: a bad value never breaks an import
_hits: dict[str, int] = {}


def plan() -> dict[str, tuple[int, str]]:
    """This process's armed points, from OPTLAB_FAULT (FaultPlanError when it does not parse)."""
    global _plan
    if _plan is None:
        _plan = {}  # a plan that does not parse arms nothing: it is reported once
        _plan = parse(os.environ.get("OPTLAB_FAULT", ""))
    return _plan


def _plan_or_nothing() -> dict[str, tuple[int, str]]:
    """A plan that does not parse arms nothing where the command line has not refused it
    already (`optlab --help`, which starts no command)."""
    try:
        return plan()
    except FaultPlanError:
        return {}


def hit(point: str, path: str = "") -> None:
    """Count a pass through `point`; on the armed pass, make its fault happen."""
    armed = _plan if _plan is not None else _plan_or_nothing()
    if point not in armed:
        return
    _hits[point] = _hits.get(point, 0) + 1
    nth, action = armed[point]
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
