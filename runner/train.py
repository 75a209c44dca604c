"""One training run, readable top to bottom.

Per epoch, in this order: pick the batch size; per step: set the lr, augment, forward,
loss (+ penalties), backward, clip, optimizer step, (every log_every steps) check the loss
and sample the gradient norm; then evaluate on the validation split, append the metrics
row, write a checkpoint if one is due, let the caller (a sweep's pruner) look at the row,
and stop if asked to. The row is appended at once (one write, no fsync); checkpoints (every
trainer.checkpoint_every_s, and when the run stops) and the fsync of the rows they cover
go to disk on a background thread, so fsyncs never stall the loop. A signal stops the run
after the current step; its checkpoint records that step, and a resume continues there.
"""
from __future__ import annotations

import math
import os
import platform
import random
import signal
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

import runner
from runner import batching, schedule
from runner.augment import build_pipeline
from runner.config import as_plain, to_yaml
from runner.data import Dataset, DeviceBatches, StreamingBatches, keep_data_on_device, load_dataset
from runner.diagnostics import Diagnostics
from runner import faults
from runner.errors import ConfigError, DataError, Interrupted, OptlabError, Pruned, StorageError, TrainingFailed, storage_error
from runner.init import InitContext, initialize
from runner.metrics import (METRIC_COLUMNS, CsvAppender, load_checkpoint, new_run_dir, process_record, read_json,
                            remove_if_empty, remove_stale_temp_files, save_checkpoint, truncate_after_epoch,
                            write_atomic, write_summary)
from runner.models import build_model
from runner.optim import build_optimizer, clear_gradients, direct_step, is_full_batch, set_lr

EpochHook = Callable[[int, dict], None]  # (epoch, metrics row); may raise Pruned


@dataclass
class RunResult:
    run_dir: Path
    status: str
    summary: dict = field(default_factory=dict)
    late_signal: int | None = None  # SIGINT/SIGTERM received after training was over


# ---------------------------------------------------------------- set-up helpers

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name}: CUDA is not available here; choose from: auto, cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"trainer.device={name}: only {torch.cuda.device_count()} GPU(s) visible")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def build_network(c: dict, data: Dataset, device: torch.device) -> torch.nn.Module:
    model = build_model(c, data.input_shape, data.output_dim)
    batch = data.x_train[: min(len(data.x_train), 512)].cpu()
    initialize(model, c["init"], c["activation"],
               InitContext(x_batch=batch, y_train=data.y_train.cpu(), num_classes=data.num_classes))
    return model.to(device)


def place_data(data: Dataset, device: torch.device, on_device: bool, channels_last: bool) -> Dataset:
    """Images in channels_last when asked; everything on the training device, or left in
    host memory for StreamingBatches when the data does not fit there."""
    if channels_last:
        if len(data.input_shape) != 3:
            raise ConfigError(f"trainer.channels_last=true needs images (C, H, W); this data has shape {data.input_shape}")
        fmt = torch.channels_last
        data = replace(data, x_train=data.x_train.contiguous(memory_format=fmt),
                       x_val=data.x_val.contiguous(memory_format=fmt))
    return data.to(device) if on_device else data


def make_batches(data: Dataset, device: torch.device, on_device: bool, seed: int) -> DeviceBatches | StreamingBatches:
    """The training split's loader: index slices of on-device data, or host batches streamed
    to the device; either way its generator (restored on resume) lives on the device."""
    generator = make_generator(device, seed)
    if on_device:
        return DeviceBatches(data.x_train, data.y_train, generator)
    return StreamingBatches(data.x_train, data.y_train, generator, device)


def prepare_model(model: torch.nn.Module, t: dict) -> torch.nn.Module:
    """trainer.channels_last and trainer.compile, in place: state_dict keys stay the same."""
    if t.get("channels_last", False):
        model.to(memory_format=torch.channels_last)
    if t.get("compile", False):
        model.compile()
    return model


def host_rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(legacy=False)}


def rng_states(generators: dict[str, torch.Generator], host_states: dict | None = None) -> dict:
    """Every RNG's state; `host_states` stands in for python's and numpy's when the caller
    knows they have not been drawn from since (reading them costs 0.1 ms per epoch)."""
    states = {**(host_states or host_rng_states()), "torch": torch.get_rng_state(),
              **{f"gen_{k}": g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict, generators: dict[str, torch.Generator]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    for key, g in generators.items():
        g.set_state(states[f"gen_{key}"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


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


class RunFolderWriter:
    """Writes checkpoints (and fsyncs the metrics rows they cover) on one background thread,
    in order, so that the fsyncs overlap the next epoch instead of stalling the loop.

    Leaving the `with` block waits until everything is on disk and re-raises a failed write.
    A checkpoint is a CPU snapshot taken when it is submitted, never the live tensors.
    """

    MAX_PENDING = 4  # writes in flight before submit waits for the oldest (bounds snapshot memory)

    def __enter__(self) -> "RunFolderWriter":
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optlab-writer")
        self.pending: list[Future] = []
        return self

    def submit(self, write: Callable, *args) -> None:
        while self.pending and (self.pending[0].done() or len(self.pending) >= self.MAX_PENDING):
            self.pending.pop(0).result()  # re-raises a failed write
        self.pending.append(self.pool.submit(write, *args))

    def __exit__(self, exc_type, *exc) -> bool:
        self.pool.shutdown(wait=True)
        errors = [f.exception() for f in self.pending if f.exception() is not None]
        if errors and exc_type is None:
            raise errors[0]
        return False


class Checkpointer:
    """Writes checkpoint.pt at the end of an epoch once `every_s` seconds have passed since
    the last write (every_s=0: every epoch), and when the run stops. The state is copied
    off the live tensors only when a write is due, so epochs in between cost nothing; a hard
    kill loses at most every_s seconds, whose rows a resume drops and recomputes identically."""

    def __init__(self, path: Path, every_s: float, table: CsvAppender, clock: Callable[[], float] = time.monotonic):
        self.path, self.every_s, self.table, self.clock = path, every_s, table, clock
        self.last_write = clock()
        self.written_at: tuple | None = None  # (epoch, step) of the state last written

    def due(self) -> bool:
        return self.clock() - self.last_write >= self.every_s

    def write(self, writer: RunFolderWriter, position: tuple, snapshot: Callable[[], dict]) -> None:
        """The checkpoint and the metrics rows it covers reach the disk together; a position
        already written is not written again."""
        if position == self.written_at:
            return
        writer.submit(save_checkpoint, self.path, snapshot())
        writer.submit(self.table.sync)
        self.last_write, self.written_at = self.clock(), position


def cpu_snapshot(tree):
    """A copy on the CPU of the live tensors in a state_dict (nested dicts, lists, tuples
    walked). The rest of a checkpoint (rng states, counters, config) is fresh already."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone() if tree.device.type == "cpu" else tree.detach().to("cpu")
    if isinstance(tree, dict):
        return {k: cpu_snapshot(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(cpu_snapshot(v) for v in tree)
    return tree


def epoch_position(epoch: int, batches_done: int, data_rng: torch.Tensor, loss_sum: torch.Tensor,
                   correct: torch.Tensor, grad_norms: list, elapsed_s: float, lr: float) -> dict:
    """Where a run stopped inside an epoch, so a resume finishes that epoch exactly as an
    uninterrupted run would: the batch order's generator state at the epoch's start, the
    batches done, the epoch's running sums and the last step's lr."""
    return {"epoch": epoch, "batches_done": batches_done, "data_rng": data_rng, "loss_sum": loss_sum,
            "correct": correct, "grad_norms": grad_norms, "elapsed_s": elapsed_s, "lr": lr}


def epoch_sums(resumed: dict | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The epoch's running (loss sum, correct count, gradient-norm samples): zero, or as a
    stopped epoch left them."""
    if resumed is None:
        return torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), []
    return resumed["loss_sum"].to(device), resumed["correct"].to(device), [g.to(device) for g in resumed["grad_norms"]]


def loss_fn(data: Dataset, c: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss, always computed in float32 (outputs of a bf16/fp16 forward are cast first)."""
    if data.task == "regression":
        return lambda out, y: F.mse_loss(_fp32(out).squeeze(-1) if y.dim() == 1 else _fp32(out), y)
    smoothing = float(c["regularize"].get("label_smoothing", 0.0) or 0.0)
    return lambda out, y: F.cross_entropy(_fp32(out), y, label_smoothing=smoothing)


def _fp32(out: torch.Tensor) -> torch.Tensor:
    return out if out.dtype == torch.float32 else out.float()  # a dtype check costs less than a no-op cast


def penalty(model: torch.nn.Module, reg: dict) -> torch.Tensor | float:
    """Explicit L1/L2 penalties on weights (not biases or norm gains): l2/2 * ||w||^2 + l1 * |w|."""
    l1, l2 = float(reg.get("l1", 0.0) or 0.0), float(reg.get("l2", 0.0) or 0.0)
    if l1 == 0 and l2 == 0:
        return 0.0
    weights = [p for p in model.parameters() if p.dim() > 1 and p.requires_grad]
    total = 0.0
    if l2:
        total = total + 0.5 * l2 * sum((w * w).sum() for w in weights)
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    return total


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


def make_autocast(device: torch.device, precision: str):
    if precision == "32":
        no_autocast = nullcontext()  # reusable: one object for every step
        return lambda: no_autocast
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def versions() -> dict:
    return {"optlab": runner.__version__, "torch": torch.__version__, "python": platform.python_version()}


# ---------------------------------------------------------------- the run folder

def start_run_folder(root: Path, name: str, config_yaml: str, summary: dict) -> Path:
    """A new run folder with config.yaml, the metrics header and a `running` summary; a
    machine that refuses any of them (a full disk) leaves no folder behind."""
    run_dir = new_run_dir(root, name)
    summary["run_dir"] = str(run_dir)
    try:
        write_atomic(run_dir / "config.yaml", config_yaml)
        CsvAppender(run_dir / "metrics.csv", METRIC_COLUMNS, durable=False)
        write_summary(run_dir / "summary.json", summary)
    except StorageError:
        for written in ("config.yaml", "metrics.csv", "summary.json"):
            (run_dir / written).unlink(missing_ok=True)
        remove_if_empty(run_dir)
        raise
    return run_dir


def check_not_running_elsewhere(run_dir: Path, previous: dict) -> None:
    """Two processes training one run folder would interleave their rows."""
    from runner.metrics import process_alive

    if previous.get("status") != "running" or previous.get("pid") == os.getpid():
        return
    alive = process_alive(previous)
    if alive:
        raise ConfigError(f"{run_dir}: still being trained by process {previous['pid']} on this machine; "
                          f"stop it (Ctrl-C or kill -TERM {previous['pid']}) before resuming")
    if alive is False:
        print(f"optlab: {run_dir} was interrupted (process gone); resuming it", file=sys.stderr)


def checkpoint_to_resume(run_dir: Path) -> dict | None:
    """The checkpoint a resume continues from, after clearing temp files a killed writer
    left; None when the run was stopped before its first checkpoint: it then starts over in
    its folder, which gives exactly the run it would have been (same config, same seed)."""
    for stale in remove_stale_temp_files(run_dir):
        print(f"optlab: removed {stale.name}, left by a writer that was stopped", file=sys.stderr)
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        print(f"optlab: {run_dir} has no checkpoint yet: starting it over from epoch 0", file=sys.stderr)
        return None
    return load_checkpoint(path)


def restore_checkpoint(ckpt: dict, path: Path, model, optimizer, scaler, generators: dict) -> None:
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt.get("scaler", scaler.state_dict()))
        restore_rng_states(ckpt["rng"], generators)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: does not match the run's config.yaml ({type(exc).__name__}: {detail})") from None


def drop_rows_after(run_dir: Path, epoch: int, fresh: bool) -> None:
    """Rows past the checkpoint are recomputed by the resume: drop them so none counts twice
    (layers.csv too; all of it when the run starts over, its first record included)."""
    truncate_after_epoch(run_dir / "metrics.csv", epoch)
    if (run_dir / "layers.csv").exists():
        truncate_after_epoch(run_dir / "layers.csv", -2 if fresh else epoch)


# ---------------------------------------------------------------- the run

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
    loss = loss_fn(data, c)
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

    from runner.progress import TrainProgress  # rich is only needed when showing progress
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


def clip_gradients(params: list, reg: dict) -> torch.Tensor | None:
    """Clip by value, then by global norm; return the (pre-clip) global L2 gradient norm."""
    if reg.get("clip_value"):
        torch.nn.utils.clip_grad_value_(params, float(reg["clip_value"]))
    if reg.get("clip_norm"):
        return torch.nn.utils.clip_grad_norm_(params, float(reg["clip_norm"])).detach()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    # the norm of the per-tensor norms, all taken by one multi-tensor op (what clip_grad_norm_
    # uses inside): three kernels whatever the number of parameters, half get_total_norm's time
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).detach()


def _all_rows(run_dir: Path) -> list[dict]:
    from runner.metrics import read_rows

    path = run_dir / "metrics.csv"
    return [{k: float(v) if v != "" else float("nan") for k, v in r.items()} for r in read_rows(path)] if path.exists() else []


def _previous_summary(run_dir: Path) -> dict:
    """The summary a resume takes over (it is rewritten whole: a damaged one is replaced)."""
    try:
        return read_json(run_dir / "summary.json")
    except DataError:
        return {}


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
