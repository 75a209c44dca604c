"""How a run (and a sweep trial) stands or ended: one spelling for train, sweep and report."""
from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A str, so it is written to summary.json and trials.csv as its plain value."""

    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"      # the loss became NaN/inf: earlier rows kept
    INTERRUPTED = "interrupted"  # a signal, or a process that is gone: resumable
    PRUNED = "pruned"          # stopped early by a sweep's pruner
    FAILED = "failed"          # an error (its reason says which)
    SURPLUS = "surplus"        # a sweep trial dropped before training: the budget was full
    WAITING = "waiting"        # a sweep trial queued, not started

    def __str__(self) -> str:
        return self.value


RUN_STATUSES = (Status.COMPLETED, Status.DIVERGED, Status.PRUNED, Status.FAILED, Status.INTERRUPTED, Status.RUNNING)
FINISHED = frozenset({Status.COMPLETED, Status.DIVERGED, Status.PRUNED, Status.FAILED})  # count toward a budget
