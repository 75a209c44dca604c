"""One training run, readable top to bottom."""
from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig

import runner
from runner import faults
from runner.config.compose import as_plain, to_yaml
from runner.data.augment import build_pipeline
from runner.data.loaders import keep_data_on_device
from runner.data.split import load_dataset
from runner.errors import (
    ConfigError,
    Interrupted,
    OptlabError,
    Pruned,
    StorageError,
    TrainingFailed,
    storage_error,
)
from runner.optim import batching
from runner.optim import schedules as schedule
from runner.optim.optimizers import (
    build_optimizer,
    clear_gradients,
    direct_step,
    is_full_batch,
    set_lr,
)
from runner.optim.regularize import clip_gradients, loss_fn, penalty
from runner.runs.files import CsvAppender
from runner.runs.folder import METRIC_COLUMNS, process_record, write_summary
from runner.training.build import (
    build_network,
    make_autocast,
    make_batches,
    make_generator,
    place_data,
    prepare_model,
    resolve_device,
    seed_everything,
)
from runner.training.checkpoint import (
    Checkpointer,
    RunFolderWriter,
    _previous_summary,
    check_not_running_elsewhere,
    checkpoint_to_resume,
    drop_rows_after,
    restore_checkpoint,
    start_run_folder,
)
from runner.training.diagnostics import Diagnostics
from runner.training.signals import stop_on_signals
from runner.training.state import (
    cpu_snapshot,
    epoch_position,
    epoch_sums,
    host_rng_states,
    rng_states,
)

EpochHook = Callable[[int, dict], None]  # (epoch, metrics row); may raise Pruned


@dataclass
class RunResult:
    run_dir: Path
    status: str
    summary: dict = field(default_factory=dict)
    late_signal: int | None = None  # SIGINT/SIGTERM received after training was over


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
    return {"optlab": runner.__version__, "torch": torch.__version__, "python": platform.python_version()}


def train(cfg: DictConfig | dict, *, run_root: Path | None = None, resume_dir: Path | None = None,
          on_epoch: EpochHook | None = None, on_start: Callable[[Path], None] | None = None,
          console=None) -> RunResult:
    """Train one run in a new run folder under run_root (or continue resume_dir). on_start
    gets the run folder once it exists; on_epoch every epoch's row (a sweep's pruner)."""
    c = as_plain(cfg)
    t = c["trainer"]
    device = resolve_device(str(t["device"]))
    seed = int(t["seed"])
    seed_everything(seed)

    # 1) components, in the order config -> data -> model -> optimizer -> schedule/batch plan
    data = load_dataset(c["data"], float(t["val_fraction"]), seed)
    on_device = keep_data_on_device(t.get("data_on_device", "auto"), data, device)
    data = place_data(data, device, on_device, bool(t.get("channels_last", False)))
    model = prepare_model(build_network(c, data, device), t)
    optimizer = build_optimizer(model.parameters(), c["optimizer"])
    augment = build_pipeline(c["augment"], data.num_classes)
    loss = loss_fn(data.task, c)
    reg = c["regularize"]
    penalized = bool(reg.get("l1") or reg.get("l2"))  # else the objective is the loss itself
    autocast = make_autocast(device, str(t["precision"]))
    scaler = torch.amp.GradScaler(device.type, enabled=str(t["precision"]) == "16" and device.type == "cuda")
    scaled = scaler.is_enabled()
    clipping = bool(c["regularize"].get("clip_norm") or c["regularize"].get("clip_value"))
    take_step = (lambda: (scaler.step(optimizer), scaler.update())) if scaled else direct_step(optimizer)
    lr_each_step = schedule.changes_within_epoch(c["schedule"])
    batches = make_batches(data, device, on_device, seed + 1)
    generators = {"data": batches.generator, "augment": make_generator(device, seed + 2)}
    epochs, full_batch = int(t["epochs"]), is_full_batch(c["optimizer"])
    if full_batch and c["batch"]["name"] != "fixed":
        raise ConfigError(f"optimizer={c['optimizer']['name']} steps on the whole training split; "
                          f"batch={c['batch']['name']} does not apply (leave batch=fixed)")
    lr0 = float(c["optimizer"]["lr"]) * batching.lr_scale(c["batch"])
    params = [p for p in model.parameters() if p.requires_grad]
    schedule.check(c["schedule"], lr0, epochs)  # a bad lr or batch plan fails before a run folder exists
    batching.batch_size_at(c["batch"], 0, len(batches))

    # 2) the run folder (new, or the one being resumed)
    state = {"epoch": -1, "step": 0, "best_val_acc": None, "schedule": {}, "wall_time_s": 0.0}
    mid_epoch: dict | None = None  # set when resuming a run stopped inside an epoch
    summary = {"status": "running", "seed": seed, "device": str(device), "epochs": epochs,
               **versions(), **process_record()}
    fresh = True  # a new run, or one restarted from its start (no checkpoint was written)
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        previous = _previous_summary(run_dir)
        check_not_running_elsewhere(run_dir, previous)
        ckpt = checkpoint_to_resume(run_dir)
        if ckpt is not None:
            restore_checkpoint(ckpt, run_dir / "checkpoint.pt", model, optimizer, scaler, generators)
            state.update({k: ckpt[k] for k in state if k in ckpt})
            mid_epoch, fresh = ckpt.get("mid_epoch"), False
        drop_rows_after(run_dir, state["epoch"], fresh)
        summary["run_dir"] = str(run_dir)
        write_summary(run_dir / "summary.json", {**previous, **summary})
    else:
        run_dir = start_run_folder(Path(run_root or Path(t["out_dir"]) / "runs"), t["name"],
                                   to_yaml(cfg) if isinstance(cfg, DictConfig) else _yaml(c), summary)
    table = CsvAppender(run_dir / "metrics.csv", METRIC_COLUMNS, durable=False)  # synced with each checkpoint
    if on_start is not None:
        on_start(run_dir)

    from runner.training.progress import TrainProgress
    progress = TrainProgress(enabled=bool(t["progress"]), total_epochs=epochs, console=console)
    diagnostics = Diagnostics(run_dir, int(c["diagnostics"]["every"]), bool(t["diagnostics"]))
    if fresh:
        diagnostics.record_initial(model, loss, data.x_train[:int(c["diagnostics"]["batch_size"])],
                                   data.y_train[:int(c["diagnostics"]["batch_size"])])
    # parameters and buffers are updated in place, so these references stay current and a
    # snapshot skips rebuilding the state_dict (a walk over every module)
    model_state = model.state_dict(keep_vars=True)
    started = time.perf_counter() - state["wall_time_s"]
    status, reason, failure = "completed", None, None
    log_every = int(t["log_every"])
    host_rng = host_rng_states()  # the loop draws only from torch generators: these stay as they are
    at_epoch_end = mid_epoch is None  # the live model, optimizer and RNGs are the state after state["epoch"]
    stopped_at: dict | None = None  # the position inside an epoch where a signal stopped the run

    def snapshot(position: dict | None = None) -> dict:
        """The checkpoint: state, CPU copies of the live tensors, RNG states, config."""
        return {**state, "model": cpu_snapshot(model_state), "optimizer": cpu_snapshot(optimizer.state_dict()),
                "scaler": scaler.state_dict(), "rng": rng_states(generators, host_rng), "config": c,
                "mid_epoch": cpu_snapshot(position)}
    checkpoint = Checkpointer(run_dir / "checkpoint.pt", float(t.get("checkpoint_every_s", 0)), table)

    with stop_on_signals() as signals:
        try:
            with table, progress, RunFolderWriter() as writer:
                try:
                    for epoch in range(state["epoch"] + 1, epochs):
                        # 3) the epoch's batch size and the number of steps it makes
                        n_train = len(batches)
                        batch_size = n_train if full_batch else batching.batch_size_at(c["batch"], epoch, n_train)
                        steps = batches.num_batches(batch_size)
                        progress.start_epoch(epoch, steps)
                        resumed, mid_epoch = mid_epoch, None  # an epoch a signal stopped goes on where it stopped:
                        if resumed is not None:                 # the same batch order, the batches done skipped
                            batches.generator.set_state(resumed["data_rng"])
                        data_rng = batches.generator.get_state()
                        done, elapsed, lr = (resumed["batches_done"], resumed["elapsed_s"], resumed["lr"]) if resumed else (0, 0.0, lr0)
                        epoch_start = time.perf_counter() - elapsed
                        loss_sum, correct, grad_norms = epoch_sums(resumed, device)
                        lr_set = None  # the lr in the optimizer's param groups, once this loop has set it
                        record_at = diagnostics.recorded_step(epoch, steps)
                        at_epoch_end = False
                        model.train()
                        for i, (xb, yb) in enumerate(batches.epoch(batch_size, skip=done), start=done):
                            # 4) the lr for this step: schedule(progress) * plateau scale (schedules that
                            # are flat within an epoch are evaluated at its first step only)
                            if lr_each_step or i == done:
                                tt, unit = schedule.progress(c["schedule"], epoch, i, steps)
                                lr = schedule.learning_rate(c["schedule"], lr0, tt, epochs, unit)
                                lr *= state["schedule"].get("scale", 1.0)
                                if lr != lr_set:
                                    set_lr(optimizer, lr)
                                    lr_set = lr
                            # 5) augment, forward (hooked on the step diagnostics records), loss, backward
                            if augment.active:
                                xb, yb = augment(xb, yb, generators["augment"])
                            probe = diagnostics.start(model) if i == record_at else None
                            with autocast():
                                out = model(xb)
                                batch_loss = loss(out, yb)
                            objective = batch_loss + penalty(model, reg) if penalized else batch_loss
                            clear_gradients(params)
                            if scaled:  # fp16: scale the loss so small gradients survive, unscale before clipping
                                scaler.scale(objective).backward()
                                scaler.unscale_(optimizer)
                            else:
                                objective.backward()
                            # 6) clip, step
                            if clipping or i % log_every == 0:  # the norm is sampled, or needed to clip
                                norm = clip_gradients(params, reg)
                                if norm is not None:
                                    grad_norms.append(norm)
                            if probe is None:
                                take_step()
                            else:  # reads the gradients, steps, and measures the update it made
                                probe.step(take_step)
                            # 7) accumulate on device; read (and check for divergence) every log_every steps
                            # (an epoch shorter than that is checked once, at its end)
                            loss_sum += batch_loss.detach() * len(xb)
                            if data.task == "classification":
                                correct += count_correct(out, yb)
                            state["step"] += 1
                            if (i + 1) % log_every == 0 and not math.isfinite(batch_loss.item()):
                                raise _Diverged(epoch, batch_loss.item())
                            if progress.enabled:
                                progress.advance_batch()
                            faults.hit("train.step")
                            if signals:
                                stopped_at = epoch_position(epoch, i + 1, data_rng, loss_sum, correct, grad_norms,
                                                            time.perf_counter() - epoch_start, lr)
                                signals.consumed = True
                                raise Interrupted(signals[0])
                        # 8) end of epoch: train metrics, validation, the row, the checkpoint
                        diagnostics.finish_step(epoch, state["step"])
                        train_loss = loss_sum.item() / n_train
                        if not math.isfinite(train_loss):
                            raise _Diverged(epoch, train_loss)
                        val_loss, val_acc = evaluate(model, data.x_val, data.y_val, loss, data.task,
                                                     int(t["eval_batch_size"]), autocast)
                        epoch_time = time.perf_counter() - epoch_start
                        row = {
                            "epoch": epoch, "step": state["step"], "lr": lr, "batch_size": batch_size,
                            "train_loss": train_loss,
                            "train_acc": correct.item() / n_train if data.task == "classification" else None,
                            "val_loss": val_loss, "val_acc": val_acc,
                            "grad_norm": torch.stack(grad_norms).mean().item() if grad_norms else float("nan"),
                            "epoch_time_s": epoch_time, "samples_per_s": n_train / max(epoch_time, 1e-9),
                        }
                        table.append(row)
                        faults.hit("train.epoch_end")
                        if not math.isfinite(val_loss):
                            raise _Diverged(epoch, val_loss)
                        if data.task == "classification" and (state["best_val_acc"] is None or val_acc > state["best_val_acc"]):
                            state["best_val_acc"] = val_acc
                        state["schedule"] = schedule.after_epoch(c["schedule"], state["schedule"], val_loss)
                        state["epoch"] = epoch
                        state["wall_time_s"] = time.perf_counter() - started
                        at_epoch_end = True
                        if checkpoint.due():
                            checkpoint.write(writer, (epoch, state["step"]), snapshot)
                        progress.end_epoch(row)
                        if on_epoch is not None:
                            on_epoch(epoch, row)
                        if signals:
                            signals.consumed = True
                            raise Interrupted(signals[0])
                except _Diverged as exc:
                    status, reason = "diverged", str(exc)
                    failure = TrainingFailed(f"diverged: {exc}; rows so far are in {run_dir}/metrics.csv")
                except Interrupted as exc:
                    status, reason, failure = "interrupted", str(exc), exc
                except Pruned as exc:
                    status, reason = "pruned", str(exc) or "pruned by the sweep's pruner"
                except torch.cuda.OutOfMemoryError as exc:
                    status, reason = "failed", f"out of memory: {exc}".splitlines()[0]
                    failure = TrainingFailed(reason)
                except ConfigError as exc:  # found only once a batch is seen (e.g. flip on tabular data)
                    status, reason, failure = "failed", str(exc), exc
                except Exception as exc:  # the machine refusing a write, or a bug: the summary says which
                    failure = storage_error(exc) or exc
                    status, reason = "failed", (str(failure) if failure is not exc
                                                else f"unexpected error: {type(exc).__name__}: {exc}")
                finally:
                    # the state to resume from: an epoch's end, or the exact step where a signal
                    # stopped the run; after other failures inside an epoch, the last checkpoint stays
                    if at_epoch_end:
                        checkpoint.write(writer, (state["epoch"], state["step"]), snapshot)
                    elif stopped_at is not None:
                        state["wall_time_s"] = time.perf_counter() - started
                        checkpoint.write(writer, (stopped_at["epoch"], state["step"]), lambda: snapshot(stopped_at))
        except (StorageError, OSError) as exc:  # a checkpoint the writer thread could not write
            failure = storage_error(exc)
            if failure is None:
                raise
            status, reason = "failed", str(failure)
        faults.hit("train.after_loop")

        # 9) the summary: what happened and the numbers a report needs
        all_rows = _all_rows(run_dir)
        if not all_rows and status == "completed":  # epochs=0: report the untrained model
            vl, va = evaluate(model, data.x_val, data.y_val, loss, data.task, int(t["eval_batch_size"]), autocast)
            all_rows, reason = [{"val_loss": vl, "val_acc": va}], "no training epochs"
        summary.update(summarize(all_rows, status, reason, state, time.perf_counter() - started))
        write_summary(run_dir / "summary.json", summary)
    late = signals[0] if signals and not signals.consumed else None
    result = RunResult(run_dir, status, summary, late_signal=late)
    if isinstance(failure, OptlabError):
        raise failure.with_result(result)
    if failure is not None:
        raise failure
    return result


class _Diverged(Exception):
    def __init__(self, epoch: int, value: float):
        super().__init__(f"loss became {value} in epoch {epoch}")


def _all_rows(run_dir: Path) -> list[dict]:
    from runner.runs.files import read_rows

    path = run_dir / "metrics.csv"
    return [{k: float(v) if v != "" else float("nan") for k, v in r.items()} for r in read_rows(path)] if path.exists() else []


def summarize(rows: list[dict], status: str, reason: str | None, state: dict, wall: float) -> dict:
    accs = [r["val_acc"] for r in rows if isinstance(r.get("val_acc"), float) and math.isfinite(r["val_acc"])]
    last = rows[-1] if rows else {}
    return {
        "status": status, "reason": reason,
        "epochs_done": state["epoch"] + 1,
        "best_val_acc": max(accs) if accs else None,
        "final_val_acc": _finite_or_none(last.get("val_acc")),
        "final_val_loss": _finite_or_none(last.get("val_loss")),
        "best_val_loss": min((r["val_loss"] for r in rows if math.isfinite(r.get("val_loss", math.nan))), default=None),
        "final_train_loss": _finite_or_none(last.get("train_loss")),
        "steps": state["step"], "wall_time_s": round(wall, 3),
    }


def _finite_or_none(value) -> float | None:
    return value if isinstance(value, float) and math.isfinite(value) else None


def _yaml(c: dict) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(c))
