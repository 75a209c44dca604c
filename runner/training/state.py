"""Where a run stands: RunState (the counters, and the position inside an epoch a signal
stopped), its snapshot into a checkpoint and its restore from one.

A checkpoint holds the counters (epoch: the last finished one, step, best_val_acc, schedule,
wall_time_s), CPU copies of the model, optimizer and grad-scaler states, every RNG's state,
the config, and `mid_epoch`: null, or where inside the next epoch the run stopped (batches
done, that epoch's batch-order generator state, its running sums, elapsed time and lr).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from optlab.errors import DataError


@dataclass
class EpochTally:
    """An epoch's running sums on the training device, read once at its end."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    grad_norms: list[torch.Tensor]

    @classmethod
    def zero(cls, device: torch.device) -> "EpochTally":
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), [])


@dataclass
class EpochPosition:
    """Where a run stands inside an epoch, so that a resume finishes it exactly as an
    uninterrupted run would: the batch order's generator state at the epoch's start, the
    batches done, the running sums, the time spent and the last step's lr."""

    epoch: int
    data_rng: torch.Tensor
    tally: EpochTally
    batches_done: int = 0
    elapsed_s: float = 0.0
    lr: float = 0.0

    def to_checkpoint(self) -> dict:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "data_rng": self.data_rng,
                "loss_sum": self.tally.loss_sum, "correct": self.tally.correct, "grad_norms": self.tally.grad_norms,
                "elapsed_s": self.elapsed_s, "lr": self.lr}

    @classmethod
    def from_checkpoint(cls, saved: dict, device: torch.device) -> "EpochPosition":
        tally = EpochTally(saved["loss_sum"].to(device), saved["correct"].to(device),
                           [g.to(device) for g in saved["grad_norms"]])
        return cls(saved["epoch"], saved["data_rng"], tally, saved["batches_done"], saved["elapsed_s"], saved["lr"])


@dataclass
class RunState:
    """The counters of a run and, while an epoch is under way or was stopped inside, its
    position. `position` is None exactly at an epoch's end: then the live model, optimizer
    and RNGs are the state after `epoch`."""

    epoch: int = -1  # the last finished epoch
    step: int = 0
    best_val_acc: float | None = None
    schedule: dict = field(default_factory=dict)  # reduce-on-plateau's state
    wall_time_s: float = 0.0
    position: EpochPosition | None = None

    def begin_epoch(self, epoch: int, generator: torch.Generator, device: torch.device, lr0: float) -> EpochPosition:
        """The epoch's position: where a stopped epoch left off (its batch order restored), or
        its start (the batch order's generator state noted for a later resume)."""
        if self.position is None:
            self.position = EpochPosition(epoch, generator.get_state(), EpochTally.zero(device), lr=lr0)
        else:
            generator.set_state(self.position.data_rng)
        return self.position

    def end_epoch(self, epoch: int, val_acc: float | None, schedule_state: dict, wall_time_s: float) -> None:
        if val_acc is not None and (self.best_val_acc is None or val_acc > self.best_val_acc):
            self.best_val_acc = val_acc
        self.epoch, self.schedule, self.wall_time_s, self.position = epoch, schedule_state, wall_time_s, None

    def counters(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "position"}

    def snapshot(self, model_state: dict, optimizer, scaler, generators: dict, host_rng: dict, config: dict) -> dict:
        """The checkpoint of this state: CPU copies of the live tensors, RNG states, config."""
        return {**self.counters(), "model": cpu_snapshot(model_state), "optimizer": cpu_snapshot(optimizer.state_dict()),
                "scaler": scaler.state_dict(), "rng": rng_states(generators, host_rng), "config": config,
                "mid_epoch": cpu_snapshot(self.position.to_checkpoint()) if self.position else None}

    @classmethod
    def restore(cls, ckpt: dict, path: Path, model, optimizer, scaler, generators: dict,
                device: torch.device) -> "RunState":
        """Put the checkpoint's state back into the live model, optimizer, scaler and RNGs."""
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scaler.load_state_dict(ckpt.get("scaler", scaler.state_dict()))
            restore_rng_states(ckpt["rng"], generators)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise DataError(f"{path}: does not match the run's config.yaml ({type(exc).__name__}: {detail})") from None
        saved = ckpt.get("mid_epoch")
        position = EpochPosition.from_checkpoint(saved, device) if saved else None
        counters = {f.name: ckpt[f.name] for f in fields(cls) if f.name in ckpt and f.name != "position"}
        return cls(**counters, position=position)


def host_rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(legacy=False)}


def rng_states(generators: dict[str, torch.Generator], host_states: dict | None = None) -> dict:
    """Every RNG's state; `host_states` stands in for python's and numpy's when the caller
    knows they have not been drawn from since (reading them costs time every epoch)."""
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
