"""Optimizer registry: one entry per update rule, built from the optimizer config group.

Each entry names the torch class, the config keys it passes through as keyword arguments
and the arguments it fixes (what makes `momentum` heavy ball and `nesterov` Nesterov).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from runner.errors import ConfigError
from runner.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    cls: type[torch.optim.Optimizer]
    description: str
    keys: tuple[str, ...] = ("lr", "weight_decay")  # config keys passed on when not null
    fixed: dict = field(default_factory=dict)  # arguments the option itself decides
    full_batch: bool = False  # one step per epoch on the whole training split (gradient descent)


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")

_register = OPTIMIZERS.register
_register("gd")(OptimizerSpec(
    torch.optim.SGD, "full-batch gradient descent: w -= lr * grad of the whole training split, once per epoch",
    fixed={"momentum": 0.0}, full_batch=True))
_register("sgd")(OptimizerSpec(
    torch.optim.SGD, "plain mini-batch SGD: w -= lr * g", keys=("lr", "weight_decay", "momentum")))
_register("momentum")(OptimizerSpec(
    torch.optim.SGD, "heavy-ball momentum: v = mu*v + g; w -= lr * v",
    keys=("lr", "weight_decay", "momentum")))
_register("nesterov")(OptimizerSpec(
    torch.optim.SGD, "Nesterov momentum: v = mu*v + g; w -= lr * (g + mu*v)",
    keys=("lr", "weight_decay", "momentum"), fixed={"nesterov": True}))
_register("adagrad")(OptimizerSpec(
    torch.optim.Adagrad, "AdaGrad: G += g^2; w -= lr * g / (sqrt(G) + eps)",
    keys=("lr", "weight_decay", "eps", "initial_accumulator_value")))
_register("rmsprop")(OptimizerSpec(
    torch.optim.RMSprop, "RMSProp: s = alpha*s + (1-alpha)*g^2; w -= lr * g / (sqrt(s) + eps)",
    keys=("lr", "weight_decay", "alpha", "eps", "momentum")))
_register("adam")(OptimizerSpec(
    torch.optim.Adam, "Adam: bias-corrected moments; weight_decay is an L2 term added to the gradient",
    keys=("lr", "weight_decay", "betas", "eps")))
_register("adamw")(OptimizerSpec(
    torch.optim.AdamW, "AdamW: Adam with decoupled weight decay, w -= lr * weight_decay * w",
    keys=("lr", "weight_decay", "betas", "eps")))


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict) -> torch.optim.Optimizer:
    spec = OPTIMIZERS.get(cfg["name"])
    kwargs = {key: _argument(key, cfg[key]) for key in spec.keys if cfg.get(key) is not None}
    return spec.cls(params, **kwargs, **spec.fixed)


def _argument(key: str, value):
    if key == "betas":
        return _betas(value)
    return float(value)


def _betas(value) -> tuple[float, float]:
    betas = tuple(float(b) for b in value)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"optimizer.betas={list(value)}: must be two numbers in [0, 1)")
    return betas


def is_full_batch(cfg: dict) -> bool:
    return OPTIMIZERS.get(cfg["name"]).full_batch


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def direct_step(optimizer: torch.optim.Optimizer) -> Callable[[], object]:
    """optimizer.step, called past torch.optim's per-call wrapper whenever that wrapper has
    nothing to do. The wrapper opens a profiler range and walks the step hooks on every call,
    with no profiler running and no hook registered too: ~14 us alone, ~50 us inside a small
    MLP's training loop on CPU (~6% of its step). It still runs whenever a profiler is on or
    any step hook is registered."""
    undecorated = getattr(type(optimizer).step, "__wrapped__", None)
    hooks = _step_hook_tables(optimizer)
    if undecorated is None or hooks is None:  # a torch whose wrapper looks different: keep it
        return optimizer.step
    profiling = torch._C._autograd._profiler_enabled

    def step():
        if profiling() or any(hooks):
            return optimizer.step()
        return undecorated(optimizer)
    return step


def _step_hook_tables(optimizer: torch.optim.Optimizer) -> list[dict] | None:
    """The four hook tables torch.optim's step wrapper walks (global and per-optimizer, pre
    and post), or None when this torch keeps them elsewhere."""
    from torch.optim import optimizer as torch_optimizer

    tables = [getattr(torch_optimizer, "_global_optimizer_pre_hooks", None),
              getattr(torch_optimizer, "_global_optimizer_post_hooks", None),
              getattr(optimizer, "_optimizer_step_pre_hooks", None),
              getattr(optimizer, "_optimizer_step_post_hooks", None)]
    return None if any(t is None for t in tables) else tables


def clear_gradients(params: list[torch.nn.Parameter]) -> None:
    """optimizer.zero_grad(set_to_none=True) without its profiler range (~10 us a call
    alone, ~70 us inside a small MLP's training loop on CPU)."""
    for p in params:
        p.grad = None
