"""The one way in: train(cfg) for one run, train_many(cfgs, population=K) for many.

Every caller (optlab train, multiruns, studies, both sweep executors, optlab rerun) trains
through train_many. It groups the runs (training.grouping: a run that cannot share a
population trains alone), builds each group's engine (training.solo for one run,
training.stacked for a population, compiled as trainer.compile says), and drives it
(training.driver). A run's ending is its result's status: completed, diverged, pruned or
failed (with the error that says why, and its exit code). What stops every run, a signal
(Interrupted), a machine refusing a write (StorageError) or a bug, is raised once every
open run has its checkpoint and summary; an OptlabError carries the last run's result.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

from optlab.config.compose import as_plain
from optlab.errors import Interrupted, OptlabError
from optlab.runs.status import Status
from optlab.training.build import build
from optlab.training.checkpoint import RunFolderWriter
from optlab.training.driver import (
    Driver,
    EpochHook,
    Member,
    RunRequest,
    RunResult,
    finish,
    outcome_of,
    stops_everything,
)
from optlab.training.grouping import Pending, refillable
from optlab.training.run_folder import RunFolder
from optlab.training.signals import stop_on_signals
from optlab.training.solo import SoloEngine
from optlab.training.stacked import StackedEngine, compile_setting

__all__ = ["RunRequest", "RunResult", "train", "train_many"]


def train(cfg, *, run_root: Path | None = None, resume_dir: Path | None = None, on_epoch: EpochHook | None = None,
          on_start: Callable[[Path], None] | None = None, console=None) -> RunResult:
    """One run in a new run folder under run_root (or continuing resume_dir). on_start gets
    the run folder once it exists; on_epoch every epoch's row (a sweep's pruner)."""
    request = RunRequest(cfg, Path(resume_dir) if resume_dir else None, on_epoch, on_start)
    return train_many([request], run_root=run_root, console=console)[0]


def train_many(runs: list, *, population: int | str = 1, run_root: Path | None = None,
               more: Callable[[int], list[RunRequest]] | None = None, planned: int = 0,
               on_group: Callable[[list[str]], None] | None = None, who: str = "optlab",
               console=None) -> list[RunResult]:
    """Train these runs (configs or RunRequests), up to `population` of one structure at a
    time as one population ("auto": the size measured fastest per member here,
    grouping.auto_size); their results, in order (runs from `more` after them). `more`:
    asked for up to N further runs whenever none waiting fits (a sweep asking for trials);
    `planned`: how many runs the caller expects in all (trainer.compile=auto weighs them);
    `who`: the name a run that trains alone is said to train alone in (`study NAME`)."""
    pending = Pending(population, more, on_dropped=_dropped, who=who, planned=max(planned, len(runs)))
    pending.add([r if isinstance(r, RunRequest) else RunRequest(r) for r in runs])
    with stop_on_signals() as signals:
        while (group := pending.next_group()) is not None:
            if signals:  # between two groups: the next one does not start
                signals.consumed = True
                raise _with_results(Interrupted(signals[0]), pending)
            if on_group is not None:
                on_group([str(as_plain(r.cfg)["trainer"]["name"]) for r in group])
            error = train_group(group, pending, signals, run_root, console, planned)
            if stops_everything(error):
                raise _with_results(error, pending)
    results = [r.result for r in pending.seen]
    if signals and not signals.consumed and results:
        results[-1].late_signal = signals[0]
    return results


def _dropped(request: RunRequest) -> None:
    request.result = RunResult(None, Status.PRUNED, {"status": Status.PRUNED, "reason": request.stop})
    if request.on_end is not None:
        request.on_end(request.result)


def _with_results(error: BaseException, pending: Pending) -> BaseException:
    """The error, carrying the results of the runs that ended (`results`; the last as `result`)."""
    done = [r.result for r in pending.seen if getattr(r, "result", None) is not None]
    if isinstance(error, OptlabError):
        error.results = done
        if done and error.result is None:
            error.with_result(done[-1])
    return error


def train_group(group: list[RunRequest], pending: Pending, signals, run_root: Path | None, console,
                planned: int) -> BaseException | None:
    """One engine's runs, to their ends (a population's slots refilled from `pending`)."""
    key, datasets = group[0].key, {}
    members = open_members(group, run_root, console, datasets, stacked=key is not None)
    if key is None:
        engine = SoloEngine(members[0].parts, members[0].folder.diagnostics)
    else:
        engine = StackedEngine([m.parts for m in members], key[0], compiled=compile_setting(members[0].parts) == "true")

    def refill(k: int) -> Member | None:
        request = pending.take((key[0], 0)) if refillable(members[0].parts) else None
        if request is None:
            return None
        member = open_members([request], run_root, console, datasets, stacked=True, size=engine.size)[0]
        engine.replace(k, member.parts)
        return member

    def epochs_left() -> int:
        left = max((m.parts.epochs - m.folder.epoch for m in driver.members if m.active), default=0)
        waiting = pending.count((key[0], 0)) + max(0, planned - len(pending.seen))
        return left + math.ceil(waiting * members[0].parts.epochs / engine.size)

    with RunFolderWriter() as writer:
        auto = key is not None and compile_setting(members[0].parts) == "auto"
        driver = Driver(engine, members, signals, writer, refill=refill if key is not None else None,
                        on_epoch_time=(lambda seconds: engine.consider_compiling(seconds, epochs_left())) if auto else None)
        return driver.run()


def open_members(requests: list[RunRequest], run_root: Path | None, console, datasets: dict, stacked: bool,
                 size: int | None = None) -> list[Member]:
    """Runs built as their solo runs would be (all of them first: a config found wrong
    leaves no folder), then their folders opened, new or resumed. A population member shows
    no progress bars of its own, and its summary says it trained in a population of `size`."""
    cfgs = [_member_config(r.cfg) if stacked else r.cfg for r in requests]
    parts = [build(cfg, datasets=datasets if stacked else None) for cfg in cfgs]
    members: list[Member] = []
    try:
        for request, cfg, p in zip(requests, cfgs, parts):
            folder = RunFolder.open(p, cfg, run_root, request.resume_dir, console, checkpoint=request.checkpoint)
            if stacked:
                folder.summary.update(execution="population", population=size or len(requests))
            members.append(Member(request, p, folder))
    except BaseException as exc:  # a folder the machine refused: the ones opened before end with it
        for m in members:
            m.outcome = outcome_of(exc, m.folder.dir)
            finish(m)
        raise
    return members


def _member_config(cfg):
    cfg = copy.deepcopy(cfg)
    cfg["trainer"]["progress"] = False
    return cfg
