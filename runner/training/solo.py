"""The solo engine: one run's step, in nanoGPT's fixed order.

Per step: augment, forward (hooked on the step diagnostics records) and loss (+ penalties),
backward (fp16: the loss scaled so small gradients survive, unscaled before clipping), clip
(the norm sampled every log_every steps, or whenever clipping needs it), the optimizer's
step (L-BFGS and Newton re-evaluate the batch's objective in theirs), and the running sums
on the device. The driver sets the lr before and reads the loss for divergence after.
Everything a run can be configured with trains here: compile, precision, streamed data,
diagnostics, closure optimizers, your own components.
"""
from __future__ import annotations

from functools import partial

import torch

from optlab.optim.optimizers import clear_gradients, set_lr
from optlab.optim.regularize import clip_gradients, penalty
from optlab.training.build import Parts
from optlab.training.diagnostics import Diagnostics
from optlab.training.engine import Engine, count_correct, evaluate
from optlab.training.state import EpochTally


class SoloEngine(Engine):
    """One run's model and optimizer, stepped in place."""

    size = 1

    def __init__(self, parts: Parts, diagnostics: Diagnostics | None = None):
        self.parts, self.device, self.diagnostics = parts, parts.device, diagnostics
        self.retuned(0)
        self.classify = parts.data.task == "classification"
        # parameters and buffers are updated in place, so these references stay current and a
        # snapshot skips rebuilding the state_dict (a walk over every module)
        self.live_state = parts.model.state_dict(keep_vars=True)
        self.tally, self.record_at, self.batch_loss = EpochTally.zero(parts.device), -1, None

    def retuned(self, k: int) -> None:
        """The regularizers' settings, read once here rather than at every step."""
        reg = self.parts.cfg["regularize"]
        self.penalized = bool(reg["l1"] or reg["l2"])
        self.clip_value, self.clip_norm = reg.get("clip_value"), reg.get("clip_norm")  # nullable: `~key` deletes them
        self.clipping = bool(self.clip_value or self.clip_norm)
        self.lr_set = None  # the optimizer's lr is set again at the next step

    def begin_epoch(self, epoch: int, steps: int, tallies: list[EpochTally]) -> None:
        self.tally = tallies[0]
        self.record_at = self.diagnostics.recorded_step(epoch, steps) if self.diagnostics else -1
        self.parts.model.train()

    def batches(self, batch_size: int, skip: int, epoch: int):
        return self.parts.batches.epoch(batch_size, skip=skip, epoch=epoch)

    def set_lrs(self, lrs: list[float]) -> None:
        if lrs[0] != self.lr_set:
            set_lr(self.parts.optimizer, lrs[0])
            self.lr_set = lrs[0]

    def step(self, i: int, batch, sample_norm: bool) -> None:
        p, tally = self.parts, self.tally
        xb, yb = batch
        # 2) augment; 3) forward (hooked on the step diagnostics records) and loss
        if p.augment.active:
            xb, yb = p.augment(xb, yb, p.generators["augment"])
        probe = self.diagnostics.start(p.model) if i == self.record_at else None
        with p.autocast():
            out = p.model(xb)
            batch_loss = p.loss(out, yb)
        objective = batch_loss + penalty(p.model, p.cfg["regularize"]) if self.penalized else batch_loss
        # 4) backward (fp16: scaled, then unscaled before clipping)
        clear_gradients(p.params)
        if p.scaler.is_enabled():
            p.scaler.scale(objective).backward()
            p.scaler.unscale_(p.optimizer)
        else:
            objective.backward()
        # 5) clip; 6) step
        if self.clipping or sample_norm:
            norm = clip_gradients([q.grad for q in p.params if q.grad is not None], self.clip_value, self.clip_norm)
            if norm is not None:
                tally.grad_norms.append(norm)
        take_step = p.take_step if p.objective is None else partial(p.optimizer.step, p.objective(xb, yb))
        if probe is None:
            take_step()
        else:  # reads the gradients, steps, and measures the update it made
            probe.step(take_step)
        # 7) the running sums, on the device
        tally.loss_sum += batch_loss.detach() * len(xb)
        if self.classify:
            tally.correct += count_correct(out, yb)
        self.batch_loss = batch_loss

    def nonfinite_losses(self) -> dict[int, float]:
        value = self.batch_loss.item()
        return {} if value == value and abs(value) != float("inf") else {0: value}

    def tallies(self) -> list[EpochTally]:
        return [self.tally]

    def evaluate(self, split: str) -> list[tuple[float, float | None]]:
        p = self.parts
        x, y = (p.data.x_val, p.data.y_val) if split == "val" else (p.data.x_test, p.data.y_test)
        return [evaluate(p.model, x, y, p.loss, p.data.task, int(p.cfg["trainer"]["eval_batch_size"]), p.autocast)]

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        return self.live_state

    def optimizer(self, k: int):
        return self.parts.optimizer
