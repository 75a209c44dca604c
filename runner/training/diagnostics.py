"""Per-layer signal statistics: what init and normalization do inside the network.

For every Block (affine layer -> norm -> activation), on one training batch: the block
output's mean and std, the fraction of saturated units (sigmoid output < 0.01 or > 0.99,
|tanh| > 0.99), the fraction of dead ReLU units (zero for the whole batch), the gradient
norm of the layer's weights, the update-to-weight ratio ||w_after - w_before|| / ||w_before||
of the step, and the weights' std. Recorded before the first step (epoch -1) and on the
last step of every `every`-th epoch, so only one step in many is instrumented.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn

from optlab.runs.files import CsvAppender

LAYER_COLUMNS = ["epoch", "step", "layer", "name", "kind", "act_mean", "act_std", "saturated_frac",
                 "dead_frac", "grad_norm", "update_ratio", "weight_std"]
SATURATING = {nn.Sigmoid: lambda y: (y < 0.01) | (y > 0.99), nn.Tanh: lambda y: y.abs() > 0.99}


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from optlab.nn.models import Block

    return [(name, m) for name, m in model.named_modules() if isinstance(m, Block)]


def affine_of(block: nn.Module) -> nn.Module:
    return next(m for m in block.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)))


def activation_of(block: nn.Module) -> nn.Module | None:
    kinds = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Identity)
    return next((m for m in block.children() if isinstance(m, kinds)), None)


def unit_axes(y: torch.Tensor) -> tuple[int, ...]:
    """Axes that index samples (and pixels): a unit is a feature, or a channel of a conv map."""
    return (0,) if y.dim() == 2 else (0, *range(2, y.dim()))


class LayerProbe:
    """Hooks one forward pass of every block, then reads gradients and the step's updates."""

    def __init__(self, model: nn.Module):
        self.entries = [(name, block, affine_of(block), activation_of(block)) for name, block in blocks(model)]
        self.stats: dict[str, dict] = {name: {} for name, *_ in self.entries}
        self.outputs: dict[str, torch.Tensor] = {}  # each block's output on the probed batch
        self.handles: list = []

    def attach(self) -> "LayerProbe":
        """Hook the next forward pass of every block (until detach)."""
        for name, block, _, act in self.entries:
            self.handles.append(block.register_forward_hook(self._block_hook(name)))
            if act is not None:
                self.handles.append(act.register_forward_hook(self._activation_hook(name)))
        return self

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    @contextmanager
    def forward(self):
        self.attach()
        try:
            yield
        finally:
            self.detach()

    def _block_hook(self, name):
        def hook(module, inputs, output):
            y = output.detach().float()
            self.stats[name].update(act_mean=y.mean().item(), act_std=y.std().item())
            self.outputs[name] = y
        return hook

    def _activation_hook(self, name):
        def hook(module, inputs, output):
            y = output.detach().float()
            saturated = SATURATING.get(type(module))
            self.stats[name]["saturated_frac"] = saturated(y).float().mean().item() if saturated else 0.0
            if isinstance(module, nn.ReLU):
                dead = (y == 0).all(dim=0) if y.dim() == 2 else (y == 0).transpose(0, 1).flatten(1).all(dim=1)
                self.stats[name]["dead_frac"] = dead.float().mean().item()
            else:
                self.stats[name]["dead_frac"] = 0.0
        return hook

    def step(self, optimizer_step) -> None:
        """Unhook the forward (done by now), read the gradients, take the optimizer step, then
        measure the update it made."""
        self.detach()
        self.read_gradients()
        self.before_step()
        optimizer_step()
        self.after_step()

    def read_gradients(self) -> None:
        for name, _, affine, _ in self.entries:
            grad = affine.weight.grad
            self.stats[name]["grad_norm"] = grad.norm().item() if grad is not None else float("nan")

    def before_step(self) -> None:
        self._before = {name: affine.weight.detach().clone() for name, _, affine, _ in self.entries}

    def after_step(self) -> None:
        for name, _, affine, _ in self.entries:
            before = self._before[name]
            ratio = (affine.weight.detach() - before).norm() / before.norm().clamp_min(1e-12)
            self.stats[name]["update_ratio"] = ratio.item()

    def rows(self, epoch: int, step: int) -> list[dict]:
        out = []
        for index, (name, _, affine, _) in enumerate(self.entries):
            kind = "conv" if isinstance(affine, (nn.Conv1d, nn.Conv2d)) else "linear"
            out.append({"epoch": epoch, "step": step, "layer": index, "name": name, "kind": kind,
                        "act_mean": float("nan"), "act_std": float("nan"), "saturated_frac": float("nan"),
                        "dead_frac": float("nan"), "grad_norm": float("nan"), "update_ratio": float("nan"),
                        "weight_std": affine.weight.detach().float().std().item(), **self.stats[name]})
        return out


class Diagnostics:
    """Writes layers.csv in the run folder. The loop asks `recorded_step` once per epoch and
    calls `start` on that step only, so the other steps pay nothing."""

    def __init__(self, run_dir: Path, every: int, enabled: bool):
        self.enabled, self.every = enabled, max(1, int(every))
        self.table = CsvAppender(run_dir / "layers.csv", LAYER_COLUMNS) if enabled else None
        self.current: LayerProbe | None = None
        self.recorded_outputs: dict[str, torch.Tensor] | None = None

    def record_initial(self, model: nn.Module, loss_fn, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """Forward and backward on one batch with a copy of the model: no step is taken, and
        neither the model (batch-norm running statistics) nor the RNG streams change."""
        if not self.enabled:
            return
        twin = copy.deepcopy(model).train()
        probe = LayerProbe(twin)
        with torch.random.fork_rng(devices=[xb.device] if xb.is_cuda else []):
            with probe.forward():
                out = twin(xb)
            loss_fn(out, yb).backward()
        probe.read_gradients()
        self._write(probe.rows(epoch=-1, step=0))

    def recorded_step(self, epoch: int, steps: int) -> int:
        """The index of the step of this epoch to record (its last), or -1 for none."""
        return steps - 1 if self.enabled and (epoch + 1) % self.every == 0 else -1

    def start(self, model: nn.Module) -> LayerProbe:
        """A probe hooked into the model's next forward pass; its step() takes the optimizer step."""
        self.current = LayerProbe(model).attach()
        return self.current

    def finish_step(self, epoch: int, step: int) -> None:
        if self.current is not None:
            self.current.detach()
            self._write(self.current.rows(epoch, step))
            self.recorded_outputs = self.current.outputs
            self.current = None

    def take_outputs(self) -> dict[str, torch.Tensor] | None:
        """The block outputs of the step recorded last, once (None when no step was since)."""
        outputs, self.recorded_outputs = self.recorded_outputs, None
        return outputs

    def _write(self, rows: list[dict]) -> None:
        self.table.append_many(rows)
