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


def loss_fn(task: str, c: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The data's loss (cross-entropy, or MSE for regression), always computed in float32
    (outputs of a bf16/fp16 forward are cast first)."""
    if task == "regression":
        return lambda out, y: F.mse_loss(_fp32(out).squeeze(-1) if y.dim() == 1 else _fp32(out), y)
    smoothing = float(c["regularize"]["label_smoothing"])
    return lambda out, y: F.cross_entropy(_fp32(out), y, label_smoothing=smoothing)


def _fp32(out: torch.Tensor) -> torch.Tensor:
    return out if out.dtype == torch.float32 else out.float()  # a dtype check costs less than a no-op cast


def penalty(model: torch.nn.Module, reg: dict) -> torch.Tensor | float:
    """Explicit L1/L2 penalties on weights (not biases or norm gains): l2/2 * ||w||^2 + l1 * |w|."""
    if not (reg["l1"] or reg["l2"]):
        return 0.0
    return penalty_of([p for p in model.parameters() if is_penalized(p)], reg)


def is_penalized(param: torch.Tensor) -> bool:
    """A trained weight matrix or kernel: what the L1/L2 penalties cover (biases, norm gains
    and frozen parameters are not)."""
    return param.dim() > 1 and param.requires_grad


def penalty_of(weights: list[torch.Tensor], reg: dict) -> torch.Tensor | float:
    """l2/2 * ||w||^2 + l1 * |w| over the given weights."""
    l1, l2 = float(reg["l1"]), float(reg["l2"])
    total = 0.0
    if l2:
        total = total + 0.5 * l2 * sum((w * w).sum() for w in weights)
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    return total


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
