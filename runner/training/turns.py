"""Members in turns: K runs that cannot share a stacked model, stepped one after another in
one process, in lockstep (one step of each member, then the next step of each).

For runs that must stay at the same epoch as each other (a PBT population) but cannot be
one vectorized model (your own model, an optimizer without a functional form, diagnostics,
...): each member is its own solo engine (training.solo), with its own model, optimizer and
batch order, and copying one member into another copies state dicts. Members draw dropout
masks from the process's one torch generator, as solo runs do, in turn: a member with
dropout is statistically, not bitwise, its solo run.
"""
from __future__ import annotations

import copy
import math

import torch

from optlab.training.build import Parts
from optlab.training.engine import Engine
from optlab.training.solo import SoloEngine
from optlab.training.state import EpochTally


class TurnsEngine(Engine):
    """K solo engines stepped in turns."""

    def __init__(self, members: list[Parts], diagnostics: list):
        self.engines = [SoloEngine(parts, probe) for parts, probe in zip(members, diagnostics)]
        self.size, self.device = len(members), members[0].device
        self.active = [True] * self.size

    def begin_epoch(self, epoch: int, steps: int, tallies: list[EpochTally]) -> None:
        for engine, tally in zip(self.engines, tallies):
            engine.begin_epoch(epoch, steps, [tally])

    def batches(self, batch_size: int, skip: int, epoch: int):
        """A tuple of one batch per member, each in its own member's order."""
        return zip(*(engine.batches(batch_size, skip, epoch) for engine in self.engines))

    def set_lrs(self, lrs: list[float]) -> None:
        for engine, lr in zip(self.engines, lrs):
            engine.set_lrs([lr])

    def step(self, i: int, batch, sample_norm: bool) -> None:
        for k, engine in enumerate(self.engines):
            if self.active[k]:
                engine.step(i, batch[k], sample_norm)

    def nonfinite_losses(self) -> dict[int, float]:
        losses = {k: e.batch_loss.item() for k, e in enumerate(self.engines) if self.active[k] and e.batch_loss is not None}
        return {k: value for k, value in losses.items() if not math.isfinite(value)}

    def tallies(self) -> list[EpochTally]:
        return [engine.tally for engine in self.engines]

    def evaluate(self, split: str) -> list[tuple[float, float | None]]:
        return [engine.evaluate(split)[0] for engine in self.engines]

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        return self.engines[k].model_state(0)

    def optimizer(self, k: int):
        return self.engines[k].optimizer(0)

    def end_member(self, k: int) -> None:
        self.active[k] = False

    def retuned(self, k: int) -> None:
        self.engines[k].retuned(0)

    def copy_optimizer_state(self, source: int, target: int) -> None:
        """The source's optimizer state, cloned, loaded into the target's optimizer with the
        target's own param groups (its hyper-parameters)."""
        donor, taker = self.optimizer(source), self.optimizer(target)
        state = copy.deepcopy(donor.state_dict()["state"])  # tensors in lists too (L-BFGS's history)
        taker.load_state_dict({"state": state, "param_groups": taker.state_dict()["param_groups"]})
