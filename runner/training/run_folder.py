"""A run folder through its life, for a solo run and for a population member alike.

open: a new folder (config.yaml, the metrics header, a `running` summary), or the folder
being resumed, with its state restored from the checkpoint (one restore) and the rows past
it dropped; a run stopped before its first checkpoint starts over in its folder. end_epoch:
the row appended, the state moved to the epoch's end, the best weights and early stopping
told, a checkpoint when one is due, the caller's look at the row (a sweep's pruner). close:
the checkpoint a stopped run resumes from. finish: summary.json, and for a completed run
model.pt and the test split's numbers. The live weights and optimizer state are wherever the
run's engine keeps them (bind): the model itself, or a slice of a population's stacks.
"""
from __future__ import annotations

import math
import platform
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

import optlab
from optlab import faults
from optlab.config.compose import to_yaml
from optlab.optim import schedules
from optlab.runs.files import CsvAppender
from optlab.runs.folder import (
    METRIC_COLUMNS,
    check_not_running_elsewhere,
    checkpoint_to_resume,
    drop_rows_after,
    previous_summary,
    process_record,
    read_metric_rows,
    start_run_folder,
    write_summary,
)
from optlab.runs.status import Status
from optlab.training.best import Watch
from optlab.training.build import Parts
from optlab.training.checkpoint import Checkpointer, RunFolderWriter
from optlab.training.diagnostics import Diagnostics
from optlab.training.difficulty import keep_scores
from optlab.training.engine import Engine, evaluate
from optlab.training.export import write_model_file
from optlab.training.hyper import value_of
from optlab.training.progress import TrainProgress
from optlab.training.state import RunState, cpu_snapshot, host_rng_states
from optlab.training.tensorboard import TensorBoard

NOT_LOADED = object()  # open()'s checkpoint when the caller has not read it yet


class Diverged(Exception):
    """The loss became NaN or infinite: the run ends `diverged`."""

    def __init__(self, epoch: int, value: float):
        super().__init__(f"loss became {value} in epoch {epoch}")


class RunFolder:
    """A run folder being trained: its parts, state, and what writes into the folder."""

    def __init__(self, parts: Parts, run_dir: Path, state: RunState, summary: dict, fresh: bool, console=None,
                 columns: tuple[str, ...] = ()):
        t, c = parts.cfg["trainer"], parts.cfg
        self.parts, self.dir, self.state, self.summary, self.columns = parts, run_dir, state, summary, columns
        self.table = CsvAppender(run_dir / "metrics.csv", METRIC_COLUMNS + list(columns), durable=False)  # synced with checkpoints
        self.progress = TrainProgress(enabled=bool(t["progress"]), total_epochs=parts.epochs, console=console)
        self.diagnostics = Diagnostics(run_dir, int(c["diagnostics"]["every"]), bool(t["diagnostics"]))
        self.watch = Watch(t, parts.data.task)  # best.pt and early stopping
        self.checkpoint = Checkpointer(run_dir / "checkpoint.pt", float(t["checkpoint_every_s"]), self.table,
                                       best=self.watch.best)
        self.tensorboard = TensorBoard(run_dir, bool(t.get("tensorboard", False)), first_epoch=state.epoch + 1)
        keep_scores(parts.batches, run_dir, c, fresh)  # a curriculum's difficulty: written, or read back
        self.host_rng = host_rng_states()  # the loop draws only from torch generators: these stay as they are
        self.started = time.perf_counter() - state.wall_time_s
        self.engine, self.slot = None, 0
        if fresh:
            size = int(c["diagnostics"]["batch_size"])
            self.diagnostics.record_initial(parts.model, parts.loss, parts.data.x_train[:size], parts.data.y_train[:size])

    @classmethod
    def open(cls, parts: Parts, cfg, run_root: Path | None, resume_dir: Path | None, console=None,
             checkpoint=NOT_LOADED, columns: tuple[str, ...] = ()) -> "RunFolder":
        """A new run folder, or the one being resumed with its state restored (`checkpoint`:
        its checkpoint when the caller has read it already, None when it has none). `columns`:
        config keys whose values metrics.csv records at each epoch (keys that change while
        the run trains: training.hyper)."""
        summary = {"status": Status.RUNNING, "seed": parts.seed, "device": str(parts.device),
                   "threads": torch.get_num_threads(), "epochs": parts.epochs, **versions(), **process_record()}
        if resume_dir is None:
            config_yaml = to_yaml(cfg) if isinstance(cfg, DictConfig) else OmegaConf.to_yaml(parts.cfg)
            run_dir = start_run_folder(Path(run_root or Path(parts.cfg["trainer"]["out_dir"]) / "runs"),
                                       parts.cfg["trainer"]["name"], config_yaml, summary, columns)
            return cls(parts, run_dir, RunState(), summary, fresh=True, console=console, columns=columns)
        run_dir = Path(resume_dir)
        previous = previous_summary(run_dir)
        check_not_running_elsewhere(run_dir, previous)
        ckpt = checkpoint_to_resume(run_dir) if checkpoint is NOT_LOADED else checkpoint
        p = parts
        state = RunState() if ckpt is None else RunState.restore(
            ckpt, run_dir / "checkpoint.pt", p.model, p.optimizer, p.scaler, p.generators, p.device)
        drop_rows_after(run_dir, state.epoch, fresh=ckpt is None)
        summary["run_dir"] = str(run_dir)
        if previous.get("extended_from"):  # the epoch counts this run was extended from
            summary["extended_from"] = previous["extended_from"]
        write_summary(run_dir / "summary.json", {**previous, **summary})
        folder = cls(parts, run_dir, state, summary, fresh=ckpt is None, console=console, columns=columns)
        folder.watch.resume(ckpt, read_metric_rows(run_dir), summary.get("extended_from", []))
        return folder

    def bind(self, engine: Engine, slot: int) -> None:
        """Where this run's live weights and optimizer state are: slot `slot` of `engine`."""
        self.engine, self.slot = engine, slot

    def __enter__(self) -> "RunFolder":
        for part in (self.table, self.progress, self.tensorboard):
            part.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        for part in (self.tensorboard, self.progress, self.table):
            part.__exit__(*exc)
        return False

    @property
    def epoch(self) -> int:
        """The epoch this run trains next."""
        return self.state.epoch + 1

    def tracked_values(self) -> dict:
        """The values of the config keys metrics.csv records (`columns`) as they are now."""
        return {key: value_of(self.parts.cfg, key) for key in self.columns}

    def end_epoch(self, epoch: int, row: dict, writer: RunFolderWriter, hook, keep_diverged: bool = False) -> None:
        """The row appended, the state moved to the epoch's end, a checkpoint if one is due,
        and the caller's look at the row (which may raise Pruned). keep_diverged: a NaN or
        infinite validation loss does not end the run (a PBT member is revived by its population)."""
        self.table.append(row)
        self.tensorboard.end_epoch(row, self.parts.model, self.diagnostics.take_outputs())
        faults.hit("train.epoch_end")
        if not math.isfinite(row["val_loss"]) and not keep_diverged:
            raise Diverged(epoch, row["val_loss"])
        schedule_state = schedules.after_epoch(self.parts.cfg["schedule"], self.state.schedule, row["val_loss"])
        self.state.end_epoch(epoch, row["val_acc"], schedule_state, time.perf_counter() - self.started)
        self.watch.end_epoch(epoch, row, self.current_weights)
        if self.checkpoint.due():
            self.checkpoint.write(writer, (epoch, self.state.step), self.snapshot)
        self.progress.end_epoch(row)
        if hook is not None:
            hook(epoch, row)

    def close(self, writer: RunFolderWriter, stopped_by_signal: bool) -> None:
        """The final checkpoint: the state at an epoch's end, or the exact step where a signal
        stopped the run. A run that failed inside an epoch keeps the last one written before."""
        if stopped_by_signal and self.state.position is not None:
            self.state.wall_time_s = time.perf_counter() - self.started
        if self.state.position is None or stopped_by_signal:
            self.checkpoint.write(writer, (self.state.epoch, self.state.step), self.snapshot)

    def checkpoint_now(self, writer: RunFolderWriter) -> None:
        """A checkpoint of the state as it is now, also at a position written before (the
        state changed since without a step: PBT's exploit)."""
        self.checkpoint.written_at = None
        self.checkpoint.write(writer, (self.state.epoch, self.state.step), self.snapshot)

    def current_weights(self) -> dict:
        """A CPU copy of the model's state_dict as it is now."""
        return cpu_snapshot(self.engine.model_state(self.slot))

    def snapshot(self) -> dict:
        p, engine = self.parts, self.engine
        return self.state.snapshot(engine.model_state(self.slot), engine.optimizer(self.slot), p.scaler, p.generators,
                                   self.host_rng, p.cfg)

    def finish(self, status: Status, reason: str | None) -> dict:
        """summary.json: what happened and the numbers a report needs (epochs=0: the untrained model's)."""
        p, rows = self.parts, read_metric_rows(self.dir)
        if not rows and status == Status.COMPLETED:
            val_loss, val_acc = evaluate(p.model, p.data.x_val, p.data.y_val, p.loss, p.data.task,
                                         int(p.cfg["trainer"]["eval_batch_size"]), p.autocast)
            rows, reason = [{"val_loss": val_loss, "val_acc": val_acc}], "no training epochs"
        self.summary.update(summarize(rows, status, reason, self.state, time.perf_counter() - self.started))
        self.summary.update(self.watch.summary())
        if status == Status.COMPLETED:
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


def versions() -> dict:
    return {"optlab": optlab.__version__, "torch": torch.__version__, "python": platform.python_version()}


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
