"""Optimizer registry: one spec per update rule, built from the optimizer config group.

Each spec names the torch class, the keys it takes (each passed to the class as the keyword
argument of that name) and the arguments it fixes (what makes `momentum` heavy ball and
`nesterov` Nesterov).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from runner.errors import ConfigError
from runner.registry import (
    HALF_OPEN_UNIT,
    NON_NEGATIVE,
    POSITIVE,
    Check,
    Key,
    Registry,
    Spec,
)


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec(Spec):
    cls: type[torch.optim.Optimizer]
    fixed: dict = field(default_factory=dict)  # arguments the option itself decides
    full_batch: bool = False  # one step per epoch on the whole training split (gradient descent)


def _two_betas(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value))


BETAS = Check(_two_betas, "two numbers in [0, 1)")


def lr_key(default: float) -> Key:
    return Key("lr", default, POSITIVE)


def weight_decay_key(default: float = 0.0) -> Key:
    return Key("weight_decay", default, NON_NEGATIVE)


def momentum_key(default: float) -> Key:
    return Key("momentum", default, HALF_OPEN_UNIT)


def eps_key(default: float) -> Key:
    return Key("eps", default, POSITIVE)


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")

OPTIMIZERS.add(OptimizerSpec(
    name="gd", cls=torch.optim.SGD, fixed={"momentum": 0.0}, full_batch=True,
    description="Full-batch gradient descent: one step per epoch on the whole training split, w -= lr * grad.",
    keys=(lr_key(0.1), weight_decay_key())))
OPTIMIZERS.add(OptimizerSpec(
    name="sgd", cls=torch.optim.SGD,
    description="Plain stochastic gradient descent on mini-batches: w -= lr * g (no momentum).",
    keys=(lr_key(0.1), weight_decay_key())))
OPTIMIZERS.add(OptimizerSpec(
    name="momentum", cls=torch.optim.SGD,
    description="Heavy-ball momentum (Polyak): v = momentum * v + g; w -= lr * v.",
    keys=(lr_key(0.1), momentum_key(0.9), weight_decay_key())))
OPTIMIZERS.add(OptimizerSpec(
    name="nesterov", cls=torch.optim.SGD, fixed={"nesterov": True},
    description="Nesterov momentum (Sutskever et al. 2013 form): v = momentum * v + g; "
                "w -= lr * (g + momentum * v).",
    keys=(lr_key(0.1), momentum_key(0.9), weight_decay_key())))
OPTIMIZERS.add(OptimizerSpec(
    name="adagrad", cls=torch.optim.Adagrad,
    description="AdaGrad (Duchi et al. 2011): G += g^2; w -= lr * g / (sqrt(G) + eps).",
    keys=(lr_key(0.01), eps_key(1.0e-10), Key("initial_accumulator_value", 0.0, NON_NEGATIVE), weight_decay_key())))
OPTIMIZERS.add(OptimizerSpec(
    name="rmsprop", cls=torch.optim.RMSprop,
    description="RMSProp (Hinton): s = alpha * s + (1 - alpha) * g^2; w -= lr * g / (sqrt(s) + eps).",
    keys=(lr_key(0.001), Key("alpha", 0.99, HALF_OPEN_UNIT), eps_key(1.0e-8), momentum_key(0.0), weight_decay_key())))
OPTIMIZERS.add(OptimizerSpec(
    name="adam", cls=torch.optim.Adam,
    description="Adam (Kingma & Ba 2015): bias-corrected first and second moment estimates. weight_decay "
                "here is an L2 term added to the gradient (coupled); see adamw for decoupled decay.",
    keys=(lr_key(0.001), Key("betas", [0.9, 0.999], BETAS), eps_key(1.0e-8), weight_decay_key())))
OPTIMIZERS.add(OptimizerSpec(
    name="adamw", cls=torch.optim.AdamW,
    description="AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, w -= lr * weight_decay * w.",
    keys=(lr_key(0.001), Key("betas", [0.9, 0.999], BETAS), eps_key(1.0e-8), weight_decay_key(0.01))))


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict) -> torch.optim.Optimizer:
    spec = OPTIMIZERS.get(cfg["name"])
    kwargs = {key.name: _argument(key, cfg[key.name]) for key in spec.keys}
    return spec.cls(params, **kwargs, **spec.fixed)


def _argument(key: Key, value):
    """A config value as the torch class takes it: lists (betas) as a tuple of floats."""
    if key.type is list:
        if key.check is not None and not key.check.test(value):
            raise ConfigError(f"optimizer.{key.name}={list(value)}: must be {key.check.expect}")
        return tuple(float(v) for v in value)
    return float(value)


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
