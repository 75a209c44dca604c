"""The one way in: train(cfg) for one run, train_many(cfgs, population=K) for many.

Every caller (optlab train, multiruns, studies, the sweep executors, optlab rerun) trains
through train_many. It groups the runs (training.grouping: a run that cannot share a
population trains alone), builds each group's engine (training.solo for one run,
training.stacked for a population, compiled as trainer.compile says; training.turns for
runs that must train in lockstep, a PBT population, but cannot be stacked), and drives it
(training.driver, with the caller's between-epochs hook, or a run's replayed schedule). A run's ending is its result's status: completed, diverged, pruned or
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
from optlab.runs.lease import released_on_error
from optlab.runs.status import Status
from optlab.training.build import build
from optlab.training.checkpoint import RunFolderWriter
from optlab.training.driver import (
    BetweenEpochs,
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
from optlab.training.replay import replay_keys, replay_of
from optlab.training.run_folder import RunFolder
from optlab.training.signals import stop_on_signals
from optlab.training.solo import SoloEngine
from optlab.training.stacked import StackedEngine, compile_setting
from optlab.training.turns import TurnsEngine

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
               console=None, lockstep: BetweenEpochs | None = None) -> list[RunResult]:
    """Train these runs (configs or RunRequests), up to `population` of one structure at a
    time as one population ("auto": the size measured fastest per member here,
    grouping.auto_size); their results, in order (runs from `more` after them). `more`:
    asked for up to N further runs whenever none waiting fits (a sweep asking for trials);
    `planned`: how many runs the caller expects in all (trainer.compile=auto weighs them);
    `who`: the name a run that trains alone is said to train alone in (`study NAME`).
    `lockstep`: all the runs train together, epoch by epoch, as one group (one population
    when they share a structure, else in turns: training.turns), with this hook between
    their epochs (PBT's exploit and explore)."""
    together = lockstep is not None
    pending = Pending(len(runs) if together else population, more, on_dropped=_dropped, who=who,
                      planned=max(planned, len(runs)), together=together)
    pending.add([r if isinstance(r, RunRequest) else RunRequest(r) for r in runs])
    with stop_on_signals() as signals:
        while (group := pending.next_group()) is not None:
            if signals:  # between two groups: the next one does not start
                signals.consumed = True
                raise _with_results(Interrupted(signals[0]), pending)
            if on_group is not None:
                on_group([str(as_plain(r.cfg)["trainer"]["name"]) for r in group])
            error = train_group(group, pending, signals, run_root, console, planned, lockstep)
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
                planned: int, between: BetweenEpochs | None = None) -> BaseException | None:
    """One engine's runs, to their ends (a population's slots refilled from `pending`): one
    run alone (its replayed schedule between its epochs, when it has one), a population of
    one structure, or runs in turns (a lockstep group that cannot be one population)."""
    key, datasets = group[0].key, {}
    execution = engine_kind(group)
    if execution is None and between is None:
        between = replay_of(group[0])
    members = open_members(group, run_root, console, datasets, execution=execution)
    if execution is None:
        engine = SoloEngine(members[0].parts, members[0].folder.diagnostics)
    elif execution == "turns":
        engine = TurnsEngine([m.parts for m in members], [m.folder.diagnostics for m in members])
    else:
        engine = StackedEngine([m.parts for m in members], key[0], compiled=compile_setting(members[0].parts) == "true")

    def refill(k: int) -> Member | None:
        request = pending.take((key[0], 0)) if refillable(members[0].parts) else None
        if request is None:
            return None
        member = open_members([request], run_root, console, datasets, execution="population", size=engine.size)[0]
        engine.replace(k, member.parts)
        return member

    def epochs_left() -> int:
        left = max((m.parts.epochs - m.folder.epoch for m in driver.members if m.active), default=0)
        waiting = pending.count((key[0], 0)) + max(0, planned - len(pending.seen))
        return left + math.ceil(waiting * members[0].parts.epochs / engine.size)

    with RunFolderWriter() as writer:
        stacked = execution == "population"
        auto = stacked and compile_setting(members[0].parts) == "auto"
        driver = Driver(engine, members, signals, writer, refill=refill if stacked and between is None else None,
                        on_epoch_time=(lambda seconds: engine.consider_compiling(seconds, epochs_left())) if auto else None,
                        between=between)
        return driver.run()


def engine_kind(group: list[RunRequest]) -> str | None:
    """None: one run alone; "population": runs of one structure, stacked; "turns": runs
    that train together but cannot be stacked (a lockstep group only)."""
    key = group[0].key
    if len(group) == 1 and key is None:
        return None
    return "population" if key is not None and all(r.key == key for r in group) else "turns"


def open_members(requests: list[RunRequest], run_root: Path | None, console, datasets: dict,
                 execution: str | None, size: int | None = None) -> list[Member]:
    """Runs built as their solo runs would be (all of them first: a config found wrong
    leaves no folder), then their folders opened, new or resumed. A member of a population
    or of runs in turns shows no progress bars of its own, and its summary says how it
    trained (`execution`) and with how many others (`size`)."""
    stacked = execution == "population"
    cfgs = [_member_config(r.cfg) if execution else r.cfg for r in requests]
    parts = [build(cfg, datasets=datasets if stacked else None) for cfg in cfgs]
    members: list[Member] = []
    try:
        for request, cfg, p in zip(requests, cfgs, parts):
            with released_on_error():  # the folder's lease, claimed in open, goes back with a refused resume
                folder = RunFolder.open(p, cfg, run_root, request.resume_dir, console, checkpoint=request.checkpoint,
                                        columns=request.columns or replay_keys(p.cfg))
            if execution:
                folder.summary.update(execution=execution, population=size or len(requests))
            folder.summary.update(request.summary)
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
