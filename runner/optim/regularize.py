"""Regularization: the loss (with label smoothing), L1/L2 penalties and gradient clipping."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from optlab.registry import HALF_OPEN_UNIT, NON_NEGATIVE, POSITIVE, Key, KeysOnlySpec

REGULARIZE = KeysOnlySpec(
    name="regularize",
    description="Explicit regularization, all off by default. l2 adds 0.5*l2*||w||^2 to the loss (unlike "
                "optimizer.weight_decay, which is decoupled for adamw); l1 adds l1*|w|_1 (weights only).",
    keys=(Key("l1", 0.0, NON_NEGATIVE), Key("l2", 0.0, NON_NEGATIVE),
          Key("clip_norm", None, POSITIVE, kind=float), Key("clip_value", None, POSITIVE, kind=float),
          Key("label_smoothing", 0.0, HALF_OPEN_UNIT),
          Key("dropout", None, HALF_OPEN_UNIT, kind=float)))  # null: model.dropout


Number = float | torch.Tensor  # one run's value, or a population's [K] values (one per member)


def loss_fn(task: str, c: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One run's loss: task_loss with its label smoothing (regression has none)."""
    smoothing = float(c["regularize"]["label_smoothing"]) if task != "regression" else 0.0
    return lambda out, y: task_loss(out, y, task, smoothing)


def task_loss(out: torch.Tensor, y: torch.Tensor, task: str, smoothing: Number = 0.0,
              members: bool = False) -> torch.Tensor:
    """The batch's mean loss, always computed in float32 (outputs of a bf16/fp16 forward are
    cast first): cross-entropy with label smoothing, or the squared error for regression.
    One run's [B, ...] outputs give a number; with `members`, a population's [K, B, ...]
    outputs and [K] smoothing give each member's loss ([K]). Soft labels (mixup) have the
    outputs' shape. Per member, cross-entropy is a log-softmax and a gather: torch.vmap has no
    batching rule of its own for cross_entropy and would decompose it op by op."""
    out = _fp32(out)
    if task == "regression" and not members:
        return F.mse_loss(out.squeeze(-1) if y.dim() == 1 else out, y)
    if task == "regression":
        target = y if y.dim() == out.dim() else y.unsqueeze(-1)
        return (out - target).pow(2).flatten(1).mean(1)
    if not members:
        return F.cross_entropy(out, y, label_smoothing=smoothing)
    logp = out.log_softmax(-1)  # [K, B, C]
    if y.dim() == out.dim():  # soft labels (mixup): smoothed as torch smooths them
        if _nonzero(smoothing):
            eps = _members(smoothing, y) if isinstance(smoothing, torch.Tensor) else smoothing
            y = y * (1 - eps) + eps / out.shape[-1]
        return -(y * logp).sum(-1).mean(-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)
    if not _nonzero(smoothing):
        return nll
    uniform = -logp.mean(-1).mean(-1)  # the smoothed part: every class's log-likelihood, averaged
    return (1 - smoothing) * nll + smoothing * uniform  # torch's label smoothing for class indices


def _members(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[K] values shaped to broadcast over a member-first tensor."""
    return values.view((-1,) + (1,) * (like.dim() - 1))


def _fp32(out: torch.Tensor) -> torch.Tensor:
    return out if out.dtype == torch.float32 else out.float()  # a dtype check costs less than a no-op cast


def penalty(model: torch.nn.Module, reg: dict) -> torch.Tensor | float:
    """Explicit L1/L2 penalties on weights (not biases or norm gains): l2/2 * ||w||^2 + l1 * |w|."""
    if not (reg["l1"] or reg["l2"]):
        return 0.0
    return penalty_of([p for p in model.parameters() if is_penalized(p)], float(reg["l1"]), float(reg["l2"]))


def is_penalized(param: torch.Tensor) -> bool:
    """A trained weight matrix or kernel: what the L1/L2 penalties cover (biases, norm gains
    and frozen parameters are not)."""
    return param.dim() > 1 and param.requires_grad


def penalty_of(weights: list[torch.Tensor], l1: Number, l2: Number, members: bool = False) -> torch.Tensor | float:
    """l2/2 * ||w||^2 + l1 * |w| over the given weights; with `members`, over each member's
    slice of stacked [K, ...] weights, with [K] (or shared) l1 and l2: a [K] penalty."""
    total = 0.0
    if _nonzero(l2):
        total = total + 0.5 * l2 * sum(_summed(w * w, members) for w in weights)
    if _nonzero(l1):
        total = total + l1 * sum(_summed(w.abs(), members) for w in weights)
    return total


def _summed(t: torch.Tensor, members: bool) -> torch.Tensor:
    return t.flatten(1).sum(1) if members else t.sum()


def _nonzero(value: Number) -> bool:
    """A number that is not 0, or any [K] tensor (a population passes tensors only when some
    member has the term)."""
    return isinstance(value, torch.Tensor) or bool(value)


def clip_gradients(grads: list[torch.Tensor], clip_value: Number | None = None, clip_norm: Number | None = None,
                   members: bool = False) -> torch.Tensor | None:
    """Clip by value, then by global norm (torch.nn.utils' clip_grad_value_ and clip_grad_norm_
    kernels, in place); return the pre-clip global L2 norm. With `members`, the gradients are
    a population's stacked [K, ...] ones and the bounds [K] tensors (inf: no clipping for that
    member): each member is clipped by its own norm, and the norms ([K]) are summed in float64
    so that a member's norm does not depend on how the reduction kernels split a population
    of this size (a member's metrics are the same in any population)."""
    if not grads:
        return None
    if members:
        return _clip_members(grads, clip_value, clip_norm)
    if clip_value:
        torch._foreach_clamp_min_(grads, -float(clip_value))
        torch._foreach_clamp_max_(grads, float(clip_value))
    # the norm of the per-tensor norms, all taken by one multi-tensor op (what clip_grad_norm_
    # uses inside): three kernels whatever the number of parameters
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if clip_norm:
        torch._foreach_mul_(grads, torch.clamp(float(clip_norm) / (norm + 1e-6), max=1.0))
    return norm.detach()


def _clip_members(grads: list[torch.Tensor], clip_value: torch.Tensor | None,
                  clip_norm: torch.Tensor | None) -> torch.Tensor:
    if clip_value is not None:
        for g in grads:
            bound = _members(clip_value, g)
            torch.clamp(g, -bound, bound, out=g)
    norms = torch.stack([g.flatten(1).double().pow(2).sum(1) for g in grads]).sum(0).sqrt().float()
    if clip_norm is not None:
        coef = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(_members(coef, g))
    return norms
