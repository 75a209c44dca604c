"""What a run's position is made of, beside the model and optimizer: counters, RNG states, the
running sums of an epoch a signal stopped, and CPU snapshots for checkpoints."""
from __future__ import annotations

import random

import numpy as np
import torch


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
