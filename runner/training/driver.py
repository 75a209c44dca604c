"""The epoch driver: one order for every engine, one run or a population.

Per epoch: each member's position (its epoch's start, or where a signal stopped it), then
per step, in nanoGPT's order: 1) each member's lr (its schedule at its own progress, times
reduce-on-plateau's scale), 2-6) the engine's step (augment, forward, loss and penalties,
backward, clip, update, the running sums), 7) every log_every steps the losses read for
divergence, 8) progress, and a signal stops every member at this step boundary. At the
epoch's end: the validation pass, each member's row and its run folder's end of epoch (row,
state, best weights, early stopping, a checkpoint when due, the caller's hook), the
between-epochs hook (BetweenEpochs: PBT's exploit and explore, a replayed schedule), the end
of each member that is done, diverged, pruned or early-stopped, and a signal stops the rest.

Members end alone: the engine masks an ended member's slot and the others go on; a
population's free slot may take a new member at an epoch's end (refill). An ended member
gets its final checkpoint (the state at an epoch's end, or the step a signal stopped it
at), then its summary, then the caller's on_end, at once.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from optlab import faults
from optlab.errors import ConfigError, Interrupted, OptlabError, Pruned, StorageError, TrainingFailed, storage_error
from optlab.optim import schedules
from optlab.runs.status import Status
from optlab.training.build import Parts
from optlab.training.checkpoint import RunFolderWriter
from optlab.training.engine import Engine, metrics_row
from optlab.training.run_folder import NOT_LOADED, Diverged, RunFolder
from optlab.training.state import EpochTally

EpochHook = Callable[[int, dict], None]  # (epoch, metrics row); may raise Pruned


@dataclass
class RunResult:
    run_dir: Path | None  # None: a run that never started (its request was stopped while it waited)
    status: Status
    summary: dict = field(default_factory=dict)
    error: OptlabError | None = None  # why a diverged, failed or interrupted run ended (its exit code)
    late_signal: int | None = None  # SIGINT/SIGTERM received after training was over


@dataclass
class RunRequest:
    """One run to train, and what its caller wants to hear of it."""

    cfg: object                                   # the composed config
    resume_dir: Path | None = None                # continue this run folder instead of a new one
    on_epoch: EpochHook | None = None             # each epoch's row (a sweep's pruner)
    on_start: Callable[[Path], None] | None = None  # the run folder, once it exists
    on_end: Callable[[RunResult], None] | None = None  # the result, as soon as the run ended
    stop: str | None = None                       # set by the caller: the run is no longer wanted, and why
    checkpoint: object = NOT_LOADED               # a resumed run's checkpoint, once read (by the grouping)
    key: object = None                            # its population key (training.grouping); None: alone
    result: RunResult | None = None               # once it ended
    columns: tuple[str, ...] = ()                 # config keys metrics.csv records each epoch (training.hyper)
    summary: dict = field(default_factory=dict)   # entries the caller adds to its summary.json (scheduler: pbt)


@dataclass
class Outcome:
    status: Status = Status.COMPLETED
    reason: str | None = None
    error: BaseException | None = None


@dataclass
class Member:
    """One run in an engine's slot: its request, parts and run folder, and how it ended."""

    request: RunRequest
    parts: Parts
    folder: RunFolder
    outcome: Outcome | None = None
    result: RunResult | None = None  # once it ended

    @property
    def active(self) -> bool:
        return self.outcome is None


def outcome_of(exc: BaseException, run_dir: Path) -> Outcome:
    """How an exception ends a run (status, reason, and the error the caller sees)."""
    if isinstance(exc, Diverged):
        return Outcome(Status.DIVERGED, str(exc), TrainingFailed(f"diverged: {exc}; rows so far are in {run_dir}/metrics.csv"))
    if isinstance(exc, Interrupted):
        return Outcome(Status.INTERRUPTED, str(exc), exc)
    if isinstance(exc, Pruned):
        return Outcome(Status.PRUNED, str(exc) or "pruned by the sweep's pruner")
    if isinstance(exc, (TrainingFailed, ConfigError)):  # a step that cannot be taken; a setting found wrong only now
        return Outcome(Status.FAILED, str(exc), exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        reason = f"out of memory: {exc}".splitlines()[0]
        return Outcome(Status.FAILED, reason, TrainingFailed(reason))
    fault = storage_error(exc)  # the machine refusing a write, or a bug: the summary says which
    if fault is not None:
        return Outcome(Status.FAILED, str(fault), fault)
    return Outcome(Status.FAILED, f"unexpected error: {type(exc).__name__}: {exc}", exc)


class BetweenEpochs:
    """What a caller does between the epochs of a group whose members train in lockstep (PBT's
    exploit and explore, a replayed schedule). start: before the first epoch this process
    trains (a resumed run's where it stopped). end: once every active member's row of the
    epoch is written (rows: slot -> row); it may copy one member's state into another
    (Engine.copy_member) and change members' hyper-parameters (training.hyper.set_values,
    then Engine.retuned). keeps_diverged: a member whose loss turns NaN or infinite trains
    on (its rows show it) for `end` to revive, instead of ending diverged."""

    keeps_diverged = False

    def start(self, driver: "Driver") -> None:
        """Before the first epoch trained here."""

    def end(self, driver: "Driver", epoch: int, rows: dict[int, dict]) -> None:
        """After every active member's row of `epoch`."""


def stops_everything(error: BaseException | None) -> bool:
    """Errors that end every run and the caller's work: a signal, a machine refusing a
    write, a bug. The others (diverged, a failed step) end one run, which is its result."""
    return error is not None and (isinstance(error, (Interrupted, StorageError)) or not isinstance(error, OptlabError))


class Driver:
    """Trains an engine's members to their ends, one epoch after another."""

    def __init__(self, engine: Engine, members: list[Member], signals, writer: RunFolderWriter,
                 refill: Callable[[int], Member | None] | None = None, on_epoch_time: Callable | None = None,
                 between: BetweenEpochs | None = None):
        self.engine, self.members, self.signals, self.writer = engine, members, signals, writer
        self.refill, self.on_epoch_time = refill, on_epoch_time
        self.between = between or BetweenEpochs()
        self.failed_write: StorageError | None = None

    def active(self) -> list[tuple[int, Member]]:
        return [(k, m) for k, m in enumerate(self.members) if m.active]

    def run(self) -> BaseException | None:
        """Train until every member has ended; the exception that stopped them all, if any
        (every member's run is closed with it first)."""
        for k, m in enumerate(self.members):
            self.join(k, m)
        try:
            if self.active():
                self.between.start(self)
            while self.active():
                started = time.perf_counter()
                self.train_epoch()
                self.end_epoch()
                if self.on_epoch_time is not None:
                    self.on_epoch_time(time.perf_counter() - started)
                self.refill_slots()
        except BaseException as exc:  # noqa: BLE001  every member is closed with it; the caller decides
            for k, m in self.active():
                self.end_member(k, outcome_of(exc, m.folder.dir))
            return self.failed_write or exc
        return self.failed_write

    def join(self, k: int, m: Member) -> None:
        """A member takes slot k: its folder's files open, and it ends at once when it has
        nothing left to train (a completed or early-stopped run resumed)."""
        self.members[k] = m
        m.folder.bind(self.engine, k)
        m.folder.__enter__()
        if m.request.on_start is not None:
            m.request.on_start(m.folder.dir)
        done = self.done_reason(m)
        if done is not None:
            self.end_member(k, done)

    def done_reason(self, m: Member) -> Outcome | None:
        if m.request.stop:
            return Outcome(Status.PRUNED, m.request.stop)
        if m.folder.epoch >= m.parts.epochs:
            return Outcome()
        if m.folder.watch.early.stop:
            return Outcome(Status.COMPLETED, "early_stopped")
        return None

    def member_lr(self, m: Member, i: int, steps: int) -> float:
        """A member's lr at step i of its epoch (0 once its run has ended)."""
        if not m.active:
            return 0.0
        c, state = m.parts.cfg["schedule"], m.folder.state
        tt, unit = schedules.progress(c, m.folder.epoch, i, steps)
        state.position.lr = schedules.learning_rate(c, m.parts.lr0, tt, m.parts.epochs, unit) * state.schedule.get("scale", 1.0)
        return state.position.lr

    def train_epoch(self) -> None:
        """One epoch of every active member, in nanoGPT's fixed order per step."""
        engine, active = self.engine, self.active()
        first = active[0][1]
        epoch, self.batch_size = first.folder.epoch, common_batch_size([m for _, m in active])
        steps = first.parts.batches.num_batches(self.batch_size, epoch)
        positions = {k: m.folder.state.begin_epoch(m.folder.epoch, m.parts.batches.generator, m.parts.device,
                                                   m.parts.lr0) for k, m in active}
        done = common_position(positions)
        engine.begin_epoch(epoch, steps, [positions[k].tally if k in positions else EpochTally.zero(engine.device)
                                          for k in range(engine.size)])
        lr_each_step = any(schedules.changes_within_epoch(m.parts.cfg["schedule"]) for _, m in active)
        log_every, progress = int(first.parts.cfg["trainer"]["log_every"]), first.folder.progress
        states = [m.folder.state for _, m in active]
        self.epoch_start = {k: time.perf_counter() - positions[k].elapsed_s for k in positions}
        progress.start_epoch(epoch, steps)
        for i, batch in enumerate(engine.batches(self.batch_size, done, epoch), start=done):
            if lr_each_step or i == done:  # 1) each member's lr (a schedule flat within the epoch: once)
                engine.set_lrs([self.member_lr(m, i, steps) for m in self.members])
            engine.step(i, batch, sample_norm=i % log_every == 0)  # 2)-6) augment ... update, running sums
            for state in states:
                state.step += 1
            if (i + 1) % log_every == 0 and not self.between.keeps_diverged:  # 7) divergence: read every log_every steps
                for k, value in engine.nonfinite_losses().items():
                    member = self.members[k]
                    self.end_member(k, outcome_of(Diverged(member.folder.epoch, value), member.folder.dir))
                if not self.active():
                    return
                states = [m.folder.state for _, m in self.active()]
            if progress.enabled:  # 8) progress, and a signal stops every member here, at a step boundary
                progress.advance_batch()
            faults.hit("train.step")
            if self.signals:
                tallies = engine.tallies()  # the running sums a mid-epoch checkpoint keeps
                for k, m in self.active():
                    positions[k].batches_done, positions[k].tally = i + 1, tallies[k]
                    positions[k].elapsed_s = time.perf_counter() - self.epoch_start[k]
                self.signals.consumed = True
                raise Interrupted(self.signals[0])

    def end_epoch(self) -> None:
        """Every active member's row and end of epoch; a signal stops them all here (their
        checkpoints are this epoch's end); then the members that are done end."""
        tallies, validation = self.engine.tallies(), self.engine.evaluate("val")
        keep, rows = self.between.keeps_diverged, {}
        for k, m in self.active():
            epoch, state = m.folder.epoch, m.folder.state
            m.folder.diagnostics.finish_step(epoch, state.step)
            row = metrics_row(epoch, state.step, state.position.lr, self.batch_size, tallies[k],
                              m.parts.batches.size(epoch), validation[k], m.parts.data.task,
                              time.perf_counter() - self.epoch_start[k])
            row.update(m.folder.tracked_values())
            try:
                if not math.isfinite(row["train_loss"]) and not keep:
                    raise Diverged(epoch, row["train_loss"])
                m.folder.end_epoch(epoch, row, self.writer, m.request.on_epoch, keep_diverged=keep)
                rows[k] = row
            except (Diverged, Pruned, TrainingFailed, ConfigError) as exc:  # this member's end, not the others'
                self.end_member(k, outcome_of(exc, m.folder.dir))
        if rows:  # before a signal stops the members: what the hook changes is in their checkpoints
            self.between.end(self, next(iter(rows.values()))["epoch"], rows)
        if self.signals and self.active():
            self.signals.consumed = True
            raise Interrupted(self.signals[0])
        for k, m in self.active():
            done = self.done_reason(m)
            if done is not None:
                self.end_member(k, done)

    def end_member(self, k: int, outcome: Outcome) -> None:
        """Member k's run ends: its slot masked, its final checkpoint on disk, its summary
        written, its caller told. A write the machine refused fails the run (and, raised
        again, stops the others)."""
        m = self.members[k]
        m.outcome = outcome
        self.engine.end_member(k)
        try:
            m.folder.close(self.writer, stopped_by_signal=isinstance(outcome.error, Interrupted))
            self.writer.drain()
        except (StorageError, OSError) as exc:
            fault = storage_error(exc)
            if fault is None:
                raise
            m.outcome, self.failed_write = Outcome(Status.FAILED, str(fault), fault), fault
        finally:
            m.folder.__exit__(None, None, None)
        finish(m)

    def refill_slots(self) -> None:
        """Free slots take new members, while the caller has runs for them."""
        if self.refill is None:
            return
        for k, m in enumerate(self.members):
            if not m.active:
                new = self.refill(k)
                if new is not None:
                    self.join(k, new)


def finish(m: Member) -> RunResult:
    """The ended member's summary and result, handed to its caller."""
    faults.hit("train.after_loop")
    outcome = m.outcome
    summary = m.folder.finish(outcome.status, outcome.reason)
    error = outcome.error if isinstance(outcome.error, OptlabError) else None
    m.result = m.request.result = RunResult(m.folder.dir, outcome.status, summary, error)
    if m.request.on_end is not None:
        m.request.on_end(m.result)
    return m.result


def common_batch_size(members: list[Member]) -> int:
    sizes = {m.parts.batch_size(m.folder.epoch) for m in members}
    if len(sizes) > 1:  # a batch plan that grows: its members stay in step, refills are refused
        raise ValueError(f"population members at epochs with different batch sizes {sorted(sizes)}")
    return sizes.pop()


def common_position(positions: dict) -> int:
    done = {p.batches_done for p in positions.values()}
    if len(done) > 1:  # the grouping puts only runs stopped at the same batch together
        raise ValueError(f"population members stopped at different batches {sorted(done)}")
    return done.pop()
