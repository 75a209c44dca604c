"""One training run, readable top to bottom.

train(): build the parts, open the run folder (new, or resumed: one restore), run the epochs,
write the summary. Per step, in this order: set the lr, augment, forward (hooked on the
step diagnostics records) and loss (+ penalties), backward, clip, optimizer step, tally on
the device, every log_every steps read the loss for divergence, stop if a signal came. Per
epoch: validate, append the metrics row, checkpoint when due, let the caller (a sweep's
pruner) look at the row, stop if asked. The row is appended at once; checkpoints (every
trainer.checkpoint_every_s, and when the run stops) and the fsync of the rows they cover go
to disk on a background thread. A signal stops the run after the current step; its
checkpoint records that step, and a resume continues there.
"""
from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

import optlab
from optlab import faults
from optlab.config.compose import to_yaml
from optlab.errors import (
    ConfigError,
    Interrupted,
    OptlabError,
    Pruned,
    StorageError,
    TrainingFailed,
    storage_error,
)
from optlab.optim import schedules
from optlab.optim.optimizers import clear_gradients, set_lr
from optlab.optim.regularize import clip_gradients, penalty
from optlab.runs.files import CsvAppender, read_rows
from optlab.runs.lease import released_on_error
from optlab.runs.folder import (
    METRIC_COLUMNS,
    check_not_running_elsewhere,
    checkpoint_to_resume,
    drop_rows_after,
    previous_summary,
    process_record,
    start_run_folder,
    write_summary,
)
from optlab.runs.status import Status
from optlab.training.best import Watch
from optlab.training.build import Parts, build
from optlab.training.checkpoint import Checkpointer, RunFolderWriter
from optlab.training.diagnostics import Diagnostics
from optlab.training.difficulty import keep_scores
from optlab.training.export import write_model_file
from optlab.training.progress import TrainProgress
from optlab.training.signals import stop_on_signals
from optlab.training.state import RunState, cpu_snapshot, host_rng_states
from optlab.training.tensorboard import TensorBoard

EpochHook = Callable[[int, dict], None]  # (epoch, metrics row); may raise Pruned


@dataclass
class RunResult:
    run_dir: Path
    status: Status
    summary: dict = field(default_factory=dict)
    late_signal: int | None = None  # SIGINT/SIGTERM received after training was over


@dataclass
class Outcome:
    status: Status = Status.COMPLETED
    reason: str | None = None
    failure: BaseException | None = None


class _Diverged(Exception):
    def __init__(self, epoch: int, value: float):
        super().__init__(f"loss became {value} in epoch {epoch}")


class _EarlyStopped(Exception):
    """trainer.early_stop.patience epochs in a row without improvement: the run is complete."""


def train(cfg: DictConfig | dict, *, run_root: Path | None = None, resume_dir: Path | None = None,
          on_epoch: EpochHook | None = None, on_start: Callable[[Path], None] | None = None,
          console=None) -> RunResult:
    """Train one run in a new run folder under run_root (or continue resume_dir). on_start
    gets the run folder once it exists; on_epoch every epoch's row (a sweep's pruner)."""
    parts = build(cfg)
    with released_on_error():  # the folder's lease, claimed in Run.open, goes back with a refused resume
        run = Run.open(parts, cfg, run_root, resume_dir, console)
    if on_start is not None:
        on_start(run.dir)
    with stop_on_signals() as signals:
        outcome = run.train_epochs(signals, on_epoch)
        faults.hit("train.after_loop")
        summary = run.write_summary(outcome)
    result = RunResult(run.dir, outcome.status, summary, signals[0] if signals and not signals.consumed else None)
    if isinstance(outcome.failure, OptlabError):
        raise outcome.failure.with_result(result)
    if outcome.failure is not None:
        raise outcome.failure
    return result


class Run:
    """A run folder being trained: the parts, the state, and what writes into the folder."""

    def __init__(self, parts: Parts, run_dir: Path, state: RunState, summary: dict, fresh: bool, console=None):
        t, c = parts.cfg["trainer"], parts.cfg
        self.parts, self.dir, self.state, self.summary = parts, run_dir, state, summary
        self.table = CsvAppender(run_dir / "metrics.csv", METRIC_COLUMNS, durable=False)  # synced with checkpoints
        self.progress = TrainProgress(enabled=bool(t["progress"]), total_epochs=parts.epochs, console=console)
        self.diagnostics = Diagnostics(run_dir, int(c["diagnostics"]["every"]), bool(t["diagnostics"]))
        self.watch = Watch(t, parts.data.task)  # best.pt and early stopping
        self.checkpoint = Checkpointer(run_dir / "checkpoint.pt", float(t["checkpoint_every_s"]), self.table,
                                       best=self.watch.best)
        self.tensorboard = TensorBoard(run_dir, bool(t.get("tensorboard", False)), first_epoch=state.epoch + 1)
        keep_scores(parts.batches, run_dir, c, fresh)  # a curriculum's difficulty: written, or read back
        # parameters and buffers are updated in place, so these references stay current and a
        # snapshot skips rebuilding the state_dict (a walk over every module)
        self.model_state = parts.model.state_dict(keep_vars=True)
        self.host_rng = host_rng_states()  # the loop draws only from torch generators: these stay as they are
        self.started = time.perf_counter() - state.wall_time_s
        if fresh:
            size = int(c["diagnostics"]["batch_size"])
            self.diagnostics.record_initial(parts.model, parts.loss, parts.data.x_train[:size], parts.data.y_train[:size])

    @classmethod
    def open(cls, parts: Parts, cfg, run_root: Path | None, resume_dir: Path | None, console=None, **extra) -> "Run":
        """A new run folder, or the one being resumed with its state restored (a run stopped
        before its first checkpoint starts over in its folder)."""
        t = parts.cfg["trainer"]
        summary = {"status": Status.RUNNING, "seed": parts.seed, "device": str(parts.device), "epochs": parts.epochs,
                   **versions(), **process_record()}
        if resume_dir is None:
            config_yaml = to_yaml(cfg) if isinstance(cfg, DictConfig) else OmegaConf.to_yaml(parts.cfg)
            run_dir = start_run_folder(Path(run_root or Path(t["out_dir"]) / "runs"), t["name"], config_yaml, summary)
            return cls(parts, run_dir, RunState(), summary, fresh=True, console=console, **extra)
        run_dir = Path(resume_dir)
        previous = previous_summary(run_dir)
        check_not_running_elsewhere(run_dir, previous)
        ckpt = checkpoint_to_resume(run_dir)
        p = parts
        state = RunState() if ckpt is None else RunState.restore(
            ckpt, run_dir / "checkpoint.pt", p.model, p.optimizer, p.scaler, p.generators, p.device)
        drop_rows_after(run_dir, state.epoch, fresh=ckpt is None)
        summary["run_dir"] = str(run_dir)
        if previous.get("extended_from"):  # the epoch counts this run was extended from
            summary["extended_from"] = previous["extended_from"]
        write_summary(run_dir / "summary.json", {**previous, **summary})
        run = cls(parts, run_dir, state, summary, fresh=ckpt is None, console=console, **extra)
        run.watch.resume(ckpt, _all_rows(run_dir), summary.get("extended_from", []))
        return run

    def train_epochs(self, signals, on_epoch: EpochHook | None) -> Outcome:
        """Every epoch left; how the run ended. The final checkpoint is the state at an epoch's
        end, or the exact step where a signal stopped the run; other failures inside an epoch
        keep the last checkpoint written before."""
        outcome, state = Outcome(), self.state
        try:
            with self.table, self.progress, self.tensorboard, RunFolderWriter() as writer:
                try:
                    for epoch in range(state.epoch + 1, self.parts.epochs):
                        if self.watch.early.stop:
                            raise _EarlyStopped()
                        row = self.train_epoch(epoch, signals)
                        self.end_epoch(epoch, row, writer, on_epoch, signals)
                except BaseException as exc:
                    outcome = self.outcome_of(exc)
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                finally:
                    if state.position is not None and isinstance(outcome.failure, Interrupted):
                        state.wall_time_s = time.perf_counter() - self.started
                    if state.position is None or isinstance(outcome.failure, Interrupted):
                        self.checkpoint.write(writer, (state.epoch, state.step), self.snapshot)
        except (StorageError, OSError) as exc:  # a checkpoint the writer thread could not write
            if storage_error(exc) is None:
                raise
            outcome = Outcome(Status.FAILED, str(storage_error(exc)), storage_error(exc))
        return outcome

    def train_epoch(self, epoch: int, signals) -> dict:
        """One pass over the training split, in nanoGPT's fixed order per step."""
        p, state = self.parts, self.state
        c, t, reg = p.cfg, p.cfg["trainer"], p.cfg["regularize"]
        batch_size = p.batch_size(epoch)
        steps = p.batches.num_batches(batch_size, epoch)
        here = state.begin_epoch(epoch, p.batches.generator, p.device, p.lr0)
        done, tally = here.batches_done, here.tally
        epoch_start = time.perf_counter() - here.elapsed_s
        lr_each_step, lr_set = schedules.changes_within_epoch(c["schedule"]), None
        penalized = bool(reg["l1"] or reg["l2"])
        clipping = bool(reg.get("clip_norm") or reg.get("clip_value"))  # nullable: `~key` may delete them
        log_every, record_at = int(t["log_every"]), self.diagnostics.recorded_step(epoch, steps)
        model, loss, params, scaled = p.model, p.loss, p.params, p.scaler.is_enabled()  # per-step names, bound once
        classify = p.data.task == "classification"
        self.progress.start_epoch(epoch, steps)
        model.train()
        for i, (xb, yb) in enumerate(p.batches.epoch(batch_size, skip=done, epoch=epoch), start=done):
            # 1) the lr: schedule(progress) * plateau scale (schedules flat within an epoch
            # are evaluated at its first step only)
            if lr_each_step or i == done:
                tt, unit = schedules.progress(c["schedule"], epoch, i, steps)
                here.lr = schedules.learning_rate(c["schedule"], p.lr0, tt, p.epochs, unit)
                here.lr *= state.schedule.get("scale", 1.0)
                if here.lr != lr_set:
                    set_lr(p.optimizer, here.lr)
                    lr_set = here.lr
            # 2) augment; 3) forward (hooked on the step diagnostics records) and loss
            if p.augment.active:
                xb, yb = p.augment(xb, yb, p.generators["augment"])
            probe = self.diagnostics.start(model) if i == record_at else None
            with p.autocast():
                out = model(xb)
                batch_loss = loss(out, yb)
            objective = batch_loss + penalty(model, reg) if penalized else batch_loss
            # 4) backward (fp16: the loss scaled so small gradients survive, unscaled before clipping)
            clear_gradients(params)
            if scaled:
                p.scaler.scale(objective).backward()
                p.scaler.unscale_(p.optimizer)
            else:
                objective.backward()
            # 5) clip (the norm is sampled every log_every steps, or needed to clip); 6) step
            if clipping or i % log_every == 0:
                norm = clip_gradients(params, reg)
                if norm is not None:
                    tally.grad_norms.append(norm)
            # (L-BFGS and Newton re-evaluate this batch's objective in their step)
            take_step = p.take_step if p.objective is None else partial(p.optimizer.step, p.objective(xb, yb))
            if probe is None:
                take_step()
            else:  # reads the gradients, steps, and measures the update it made
                probe.step(take_step)
            # 7) tally on the device; read the loss (divergence) every log_every steps only
            tally.loss_sum += batch_loss.detach() * len(xb)
            if classify:
                tally.correct += count_correct(out, yb)
            state.step += 1
            if (i + 1) % log_every == 0 and not math.isfinite(batch_loss.item()):
                raise _Diverged(epoch, batch_loss.item())
            # 8) progress, and a signal stops the run here, at a step boundary
            if self.progress.enabled:
                self.progress.advance_batch()
            faults.hit("train.step")
            if signals:
                here.batches_done, here.elapsed_s = i + 1, time.perf_counter() - epoch_start
                signals.consumed = True
                raise Interrupted(signals[0])
        return self.epoch_row(epoch, batch_size, epoch_start)

    def epoch_row(self, epoch: int, batch_size: int, epoch_start: float) -> dict:
        """The metrics row: the epoch's training sums (read here, once) and the validation pass."""
        p, tally, n_train = self.parts, self.state.position.tally, self.parts.batches.size(epoch)
        self.diagnostics.finish_step(epoch, self.state.step)
        train_loss = tally.loss_sum.item() / n_train
        if not math.isfinite(train_loss):
            raise _Diverged(epoch, train_loss)
        val_loss, val_acc = evaluate(p.model, p.data.x_val, p.data.y_val, p.loss, p.data.task,
                                     int(p.cfg["trainer"]["eval_batch_size"]), p.autocast)
        epoch_time = time.perf_counter() - epoch_start
        return {"epoch": epoch, "step": self.state.step, "lr": self.state.position.lr, "batch_size": batch_size,
                "train_loss": train_loss,
                "train_acc": tally.correct.item() / n_train if p.data.task == "classification" else None,
                "val_loss": val_loss, "val_acc": val_acc,
                "grad_norm": torch.stack(tally.grad_norms).mean().item() if tally.grad_norms else float("nan"),
                "epoch_time_s": epoch_time, "samples_per_s": n_train / max(epoch_time, 1e-9)}

    def end_epoch(self, epoch: int, row: dict, writer: RunFolderWriter, on_epoch: EpochHook | None, signals) -> None:
        """The row appended, the state moved to the epoch's end, a checkpoint if one is due,
        the caller's look at the row, and a stop if a signal came."""
        self.table.append(row)
        self.tensorboard.end_epoch(row, self.parts.model, self.diagnostics.take_outputs())
        faults.hit("train.epoch_end")
        if not math.isfinite(row["val_loss"]):
            raise _Diverged(epoch, row["val_loss"])
        schedule_state = schedules.after_epoch(self.parts.cfg["schedule"], self.state.schedule, row["val_loss"])
        self.state.end_epoch(epoch, row["val_acc"], schedule_state, time.perf_counter() - self.started)
        self.watch.end_epoch(epoch, row, self.current_weights)
        if self.checkpoint.due():
            self.checkpoint.write(writer, (epoch, self.state.step), self.snapshot)
        self.progress.end_epoch(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if signals:
            signals.consumed = True
            raise Interrupted(signals[0])

    def current_weights(self) -> dict:
        """A CPU copy of the model's state_dict as it is now."""
        return cpu_snapshot(self.model_state)

    def snapshot(self) -> dict:
        p = self.parts
        return self.state.snapshot(self.model_state, p.optimizer, p.scaler, p.generators, self.host_rng, p.cfg)

    def outcome_of(self, exc: BaseException) -> Outcome:
        """How an exception out of the epochs ends the run (status, reason, what to raise)."""
        if isinstance(exc, _EarlyStopped):
            return Outcome(Status.COMPLETED, "early_stopped")
        if isinstance(exc, _Diverged):
            return Outcome(Status.DIVERGED, str(exc), TrainingFailed(f"diverged: {exc}; rows so far are in {self.dir}/metrics.csv"))
        if isinstance(exc, Interrupted):
            return Outcome(Status.INTERRUPTED, str(exc), exc)
        if isinstance(exc, Pruned):
            return Outcome(Status.PRUNED, str(exc) or "pruned by the sweep's pruner")
        if isinstance(exc, TrainingFailed):  # an optimizer that cannot step (Newton on a singular Hessian)
            return Outcome(Status.FAILED, str(exc), exc)
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            reason = f"out of memory: {exc}".splitlines()[0]
            return Outcome(Status.FAILED, reason, TrainingFailed(reason))
        if isinstance(exc, ConfigError):  # found only once a batch is seen (e.g. flip on tabular data)
            return Outcome(Status.FAILED, str(exc), exc)
        fault = storage_error(exc)  # the machine refusing a write, or a bug: the summary says which
        if fault is not None:
            return Outcome(Status.FAILED, str(fault), fault)
        return Outcome(Status.FAILED, f"unexpected error: {type(exc).__name__}: {exc}", exc)

    def write_summary(self, outcome: Outcome) -> dict:
        """summary.json: what happened and the numbers a report needs (epochs=0: the untrained model's)."""
        p, rows = self.parts, _all_rows(self.dir)
        if not rows and outcome.status == Status.COMPLETED:
            val_loss, val_acc = evaluate(p.model, p.data.x_val, p.data.y_val, p.loss, p.data.task,
                                         int(p.cfg["trainer"]["eval_batch_size"]), p.autocast)
            rows, outcome.reason = [{"val_loss": val_loss, "val_acc": val_acc}], "no training epochs"
        self.summary.update(summarize(rows, outcome.status, outcome.reason, self.state,
                                      time.perf_counter() - self.started))
        self.summary.update(self.watch.summary())
        if outcome.status == Status.COMPLETED:
            self.summary.update(self.export_best())
        write_summary(self.dir / "summary.json", self.summary)
        return self.summary

    def export_best(self) -> dict:
        """model.pt from the best validation epoch's weights (the last ones when no epoch was
        validated), and those weights' loss and accuracy on the test split, measured once."""
        p = self.parts
        weights = self.watch.best.weights or self.current_weights()
        p.model.load_state_dict(weights)
        write_model_file(self.dir, p, weights, self.watch.best)
        if not p.data.has_test:
            return {}
        loss, acc = evaluate(p.model, p.data.x_test, p.data.y_test, p.loss, p.data.task,
                             int(p.cfg["trainer"]["eval_batch_size"]), p.autocast)
        return {"test_loss": loss, "test_acc": acc}


def count_correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    target = y.argmax(dim=1) if y.dim() == 2 else y  # soft labels (mixup) -> their top class
    return (out.argmax(dim=1) == target).sum()


@torch.no_grad()
def evaluate(model, x, y, loss, task: str, batch_size: int, autocast) -> tuple[float, float | None]:
    """(loss, accuracy) on (x, y) in eval mode. The model is left in eval mode: the loop puts
    it back in train mode at the start of each epoch (each mode switch walks every module)."""
    model.eval()
    device = next(model.parameters()).device  # x stays in host memory when the data is streamed
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        with autocast():
            out = model(xb)
        total_loss += loss(out, yb) * len(xb)
        if task == "classification":
            correct += count_correct(out, yb)
    acc = correct.item() / len(x) if task == "classification" else None  # no fake accuracy for regression
    return total_loss.item() / len(x), acc


def versions() -> dict:
    return {"optlab": optlab.__version__, "torch": torch.__version__, "python": platform.python_version()}


def _all_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.csv"
    return [{k: float(v) if v != "" else float("nan") for k, v in r.items()} for r in read_rows(path)] if path.exists() else []


def summarize(rows: list[dict], status: Status, reason: str | None, state: RunState, wall: float) -> dict:
    accs = [r["val_acc"] for r in rows if isinstance(r.get("val_acc"), float) and math.isfinite(r["val_acc"])]
    last = rows[-1] if rows else {}
    return {
        "status": status, "reason": reason,
        "epochs_done": state.epoch + 1,
        "best_val_acc": max(accs) if accs else None,
        "final_val_acc": _finite_or_none(last.get("val_acc")),
        "final_val_loss": _finite_or_none(last.get("val_loss")),
        "best_val_loss": min((r["val_loss"] for r in rows if math.isfinite(r.get("val_loss", math.nan))), default=None),
        "final_train_loss": _finite_or_none(last.get("train_loss")),
        "steps": state.step, "wall_time_s": round(wall, 3),
    }


def _finite_or_none(value) -> float | None:
    return value if isinstance(value, float) and math.isfinite(value) else None
