"""The step kernel the epoch driver runs, and what its two implementations share.

An Engine trains K members (K=1: training.solo's step for one run; K>=1: training.stacked's
vectorized step over a population). The driver (training.driver) owns the order; an
engine owns how a step is computed and where the members' weights, optimizer state and
running sums live. Both engines hand the driver the same things: each member's epoch sums
as an EpochTally (what a mid-epoch checkpoint saves), its validation numbers from the one
evaluate pass below, its live weights and its optimizer state in torch.optim's format.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator

import torch

from optlab.training.state import EpochTally

Batch = tuple[torch.Tensor, torch.Tensor]
Forward = Callable[[torch.Tensor], torch.Tensor]


class Engine(ABC):
    """A step kernel over `size` members, each slot k holding one run's parts."""

    size: int
    device: torch.device

    @abstractmethod
    def begin_epoch(self, epoch: int, steps: int, tallies: list[EpochTally]) -> None:
        """Training mode, and the members' running sums (zero, or where a stopped epoch left them)."""

    @abstractmethod
    def batches(self, batch_size: int, skip: int, epoch: int) -> Iterable:
        """The epoch's batches for every member (each in its own order), the first `skip` left out."""

    @abstractmethod
    def set_lrs(self, lrs: list[float]) -> None:
        """Each member's learning rate for the next steps (0 for a member that ended)."""

    @abstractmethod
    def step(self, i: int, batch, sample_norm: bool) -> None:
        """One optimizer step of every member on its batch: augment, forward, loss and
        penalties, backward, clip, update, and the running sums. `sample_norm`: record the
        gradient norm (every log_every steps, and whenever clipping needs it)."""

    @abstractmethod
    def nonfinite_losses(self) -> dict[int, float]:
        """The members whose last batch loss is NaN or infinite, and that value (it reads the loss: a sync)."""

    @abstractmethod
    def tallies(self) -> list[EpochTally]:
        """Each member's running sums of the epoch so far."""

    @abstractmethod
    def evaluate(self, split: str) -> list[tuple[float, float | None]]:
        """Each member's (loss, accuracy) on its `split` ("val"), in eval mode."""

    @abstractmethod
    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's parameters and buffers by state_dict name: its live tensors (views)."""

    @abstractmethod
    def optimizer(self, k: int):
        """Member k's optimizer state, as an object with torch.optim's state_dict()."""

    def end_member(self, k: int) -> None:
        """Member k's run has ended: it steps no more (a population masks its slot)."""

    def retuned(self, k: int) -> None:
        """Member k's hyper-parameters changed in its parts (training.hyper.set_values): the
        next steps use them."""

    @torch.no_grad()
    def copy_member(self, source: int, target: int) -> None:
        """Member `target` takes member `source`'s weights, normalization buffers and optimizer
        state, bitwise (PBT's exploit); its data-order and augmentation generators stay its own."""
        state = self.model_state(source)
        for name, tensor in self.model_state(target).items():
            tensor.copy_(state[name])
        self.copy_optimizer_state(source, target)

    def copy_optimizer_state(self, source: int, target: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} holds one member: there is no other to copy")


def count_correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions over the batch dimension: [B, C] -> a count; [K, B, C] -> [K].
    Soft labels (mixup) have the outputs' shape: their top class counts."""
    target = y.argmax(dim=-1) if y.dim() == out.dim() else y
    return (out.argmax(dim=-1) == target).sum(-1)


@torch.no_grad()
def evaluate_batches(forward: Forward, batches: Iterator[Batch], loss: Callable, task: str, n: int,
                     autocast: Callable, batch_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean loss and accuracy over n samples, from batches whose samples run along `batch_dim`
    (0 for one model; 1 for a population's [K, B, ...] batches, whose losses are [K]): float64
    tensors on the device, which the caller reads once."""
    loss_sum, correct = 0.0, 0
    for xb, yb in batches:
        with autocast():
            out = forward(xb)
        loss_sum = loss_sum + loss(out, yb) * xb.shape[batch_dim]
        if task == "classification":
            correct = correct + count_correct(out, yb)
    accuracy = torch.as_tensor(correct).double() / n if task == "classification" else None
    return torch.as_tensor(loss_sum).double() / n, accuracy


@torch.no_grad()
def evaluate(model, x, y, loss, task: str, batch_size: int, autocast) -> tuple[float, float | None]:
    """One model's (loss, accuracy) on (x, y) in eval mode. The model is left in eval mode:
    the driver puts it back in train mode at the start of each epoch (each mode switch walks
    every module)."""
    model.eval()
    device = next(model.parameters()).device  # x stays in host memory when the data is streamed
    batches = ((x[s:s + batch_size].to(device), y[s:s + batch_size].to(device)) for s in range(0, len(x), batch_size))
    mean_loss, accuracy = evaluate_batches(model, batches, loss, task, len(x), autocast)
    return mean_loss.item(), (accuracy.item() if accuracy is not None else None)  # no fake accuracy for regression


def metrics_row(epoch: int, step: int, lr: float, batch_size: int, tally: EpochTally, n_train: int,
                validation: tuple[float, float | None], task: str, epoch_time: float) -> dict:
    """metrics.csv's row: the epoch's training sums (read here, once), its validation numbers and timing."""
    val_loss, val_acc = validation
    return {"epoch": epoch, "step": step, "lr": lr, "batch_size": batch_size,
            "train_loss": tally.loss_sum.item() / n_train,
            "train_acc": tally.correct.item() / n_train if task == "classification" else None,
            "val_loss": val_loss, "val_acc": val_acc,
            "grad_norm": torch.stack(tally.grad_norms).mean().item() if tally.grad_norms else float("nan"),
            "epoch_time_s": epoch_time, "samples_per_s": n_train / max(epoch_time, 1e-9)}
