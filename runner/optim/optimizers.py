"""Optimizer registry: one spec per update rule, built from the optimizer config group.

Each spec names the torch class whose arithmetic it is, the keys it takes (under the
class's keyword names) and the arguments it fixes (what makes `momentum` heavy ball and
`nesterov` Nesterov), and its rule in optlab.optim.functional: runs update with that rule
(bitwise the torch class's update), keeping torch.optim's state_dict format; a spec
without a rule builds the torch class itself.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from optlab.errors import ConfigError
from optlab.optim import functional, second_order
from optlab.registry import (
    HALF_OPEN_UNIT,
    NON_NEGATIVE,
    POSITIVE,
    Check,
    Key,
    Registry,
    TARGET,
    Spec,
    at_least,
    import_target,
    is_number,
)


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec(Spec):
    cls: type[torch.optim.Optimizer]
    fixed: dict = field(default_factory=dict)  # arguments the option itself decides
    full_batch: bool = False  # one step per epoch on the whole training split (gradient descent)
    rule: functional.UpdateRule | None = None  # its (init, update) pair; None: the torch class is built
    rule_args: Callable[[dict], dict] | None = None  # a param group -> the rule's hyper-parameters
    # step(closure) re-evaluates the batch's objective (optlab.optim.second_order.BatchObjective)
    closure: bool = False


def sgd_args(group: dict) -> dict:
    return {k: group[k] for k in ("lr", "weight_decay", "momentum", "nesterov")}


def adagrad_args(group: dict) -> dict:
    return {k: group[k] for k in ("lr", "weight_decay", "eps", "initial_accumulator_value")}


def rmsprop_args(group: dict) -> dict:
    return {k: group[k] for k in ("lr", "weight_decay", "alpha", "eps", "momentum")}


def adam_args(group: dict) -> dict:
    beta1, beta2 = group["betas"]
    return {"lr": group["lr"], "beta1": beta1, "beta2": beta2, "eps": group["eps"],
            "weight_decay": group["weight_decay"], "decoupled": group["decoupled_weight_decay"]}


def adadelta_args(group: dict) -> dict:
    return {k: group[k] for k in ("lr", "weight_decay", "rho", "eps")}


SGD_RULE = {"rule": functional.sgd, "rule_args": sgd_args}


def _two_betas(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value))


BETAS = Check(_two_betas, "two numbers in [0, 1)")


def _scales(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and k and is_number(v) and math.isfinite(v) and v > 0 for k, v in value.items())


# parameter-name prefix (or glob) -> a factor on the lr of those parameters (their own param group)
LR_SCALE = Key("lr_scale", None, Check(_scales, "a mapping of parameter-name prefixes to numbers > 0"), kind=dict)


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
    name="gd", cls=torch.optim.SGD, fixed={"momentum": 0.0}, full_batch=True, **SGD_RULE,
    description="Full-batch gradient descent: one step per epoch on the whole training split, w -= lr * grad.",
    keys=(lr_key(0.1), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="sgd", cls=torch.optim.SGD, **SGD_RULE,
    description="Plain stochastic gradient descent on mini-batches: w -= lr * g (no momentum).",
    keys=(lr_key(0.1), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="momentum", cls=torch.optim.SGD, **SGD_RULE,
    description="Heavy-ball momentum (Polyak): v = momentum * v + g; w -= lr * v.",
    keys=(lr_key(0.1), momentum_key(0.9), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="nesterov", cls=torch.optim.SGD, fixed={"nesterov": True}, **SGD_RULE,
    description="Nesterov momentum (Sutskever et al. 2013 form): v = momentum * v + g; "
                "w -= lr * (g + momentum * v).",
    keys=(lr_key(0.1), momentum_key(0.9), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="adagrad", cls=torch.optim.Adagrad, rule=functional.adagrad, rule_args=adagrad_args,
    description="AdaGrad (Duchi et al. 2011): G += g^2; w -= lr * g / (sqrt(G) + eps).",
    keys=(lr_key(0.01), eps_key(1.0e-10), Key("initial_accumulator_value", 0.0, NON_NEGATIVE), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="rmsprop", cls=torch.optim.RMSprop, rule=functional.rmsprop, rule_args=rmsprop_args,
    description="RMSProp (Hinton): s = alpha * s + (1 - alpha) * g^2; w -= lr * g / (sqrt(s) + eps).",
    keys=(lr_key(0.001), Key("alpha", 0.99, HALF_OPEN_UNIT), eps_key(1.0e-8), momentum_key(0.0), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="adadelta", cls=torch.optim.Adadelta, rule=functional.adadelta, rule_args=adadelta_args,
    description="AdaDelta (Zeiler 2012): s = rho*s + (1-rho)*g^2; d = sqrt(u + eps) / sqrt(s + eps) * g; "
                "u = rho*u + (1-rho)*d^2; w -= lr * d (lr 1.0: the paper's rule has none).",
    keys=(lr_key(1.0), Key("rho", 0.9, HALF_OPEN_UNIT), eps_key(1.0e-6), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="adam", cls=torch.optim.Adam, rule=functional.adam, rule_args=adam_args,
    description="Adam (Kingma & Ba 2015): bias-corrected first and second moment estimates. weight_decay "
                "here is an L2 term added to the gradient (coupled); see adamw for decoupled decay.",
    keys=(lr_key(0.001), Key("betas", [0.9, 0.999], BETAS), eps_key(1.0e-8), weight_decay_key(), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="adamw", cls=torch.optim.AdamW, rule=functional.adam, rule_args=adam_args,
    description="AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, w -= lr * weight_decay * w.",
    keys=(lr_key(0.001), Key("betas", [0.9, 0.999], BETAS), eps_key(1.0e-8), weight_decay_key(0.01), LR_SCALE)))
OPTIMIZERS.add(OptimizerSpec(
    name="newton", cls=second_order.Newton, full_batch=True, closure=True,
    description="Damped Newton on the full batch: w -= lr * (H + damping * I)^-1 g, H the exact Hessian "
                "(torch.func) of the loss + penalties over all parameters; up to max_params parameters.",
    keys=(lr_key(1.0), Key("damping", 0.0, NON_NEGATIVE), weight_decay_key(), Key("max_params", 20000, at_least(1)))))
OPTIMIZERS.add(OptimizerSpec(
    name="lbfgs", cls=torch.optim.LBFGS, full_batch=True, closure=True,
    description="L-BFGS (torch.optim.LBFGS) on the full batch: one step per epoch of up to max_iter iterations, "
                "history_size past updates, line_search_fn=strong_wolfe or null (fixed step lr).",
    keys=(lr_key(1.0), Key("max_iter", 20, at_least(1)), Key("history_size", 100, at_least(1)),
          Key("line_search_fn", None, choices=("strong_wolfe", "null"), kind=str),
          Key("tolerance_grad", 1.0e-7, NON_NEGATIVE), Key("tolerance_change", 1.0e-9, NON_NEGATIVE))))
OPTIMIZERS.add(OptimizerSpec(
    name="custom", cls=torch.optim.Optimizer, keys=(TARGET, lr_key(0.1)), target=("cfg", "params"),
    description="Your own optimizer: optimizer._target_=module:function names a builder (cfg, params) -> "
                "torch.optim.Optimizer; cfg is the optimizer option's mapping, lr the one the schedule starts from "
                "(set in every param group each step)."))


def build_custom(params: list, cfg: dict) -> torch.optim.Optimizer:
    """optimizer=custom: the user's builder, called with the option's mapping and the parameters."""
    optimizer = import_target("optimizer._target_", cfg["_target_"], OPTIMIZERS.get("custom").target)(dict(cfg), params)
    if not isinstance(getattr(optimizer, "param_groups", None), list) or not callable(getattr(optimizer, "step", None)):
        raise ConfigError(f"optimizer._target_={cfg['_target_']}: returned {type(optimizer).__name__}, "
                          "not a torch.optim.Optimizer (param_groups and step())")
    return optimizer


def build_optimizer(params: Iterable, cfg: dict):
    """The option's functional optimizer (its torch class when it has no rule). `params`:
    tensors, or param groups (dicts with `params` and an `lr_scale`, as
    optlab.training.trainable makes them for optimizer.lr_scale)."""
    spec = OPTIMIZERS.get(cfg["name"])
    kwargs = {**{key.name: _argument(key, cfg[key.name]) for key in spec.keys if key is not LR_SCALE}, **spec.fixed}
    params = [{**g, "lr": kwargs["lr"] * g["lr_scale"]} if isinstance(g, dict) else g for g in params]
    if spec.target:
        return build_custom(params, cfg)
    if spec.rule is None:
        return spec.cls(params, **kwargs)
    return functional.FunctionalOptimizer(params, spec.rule, {**torch_defaults(spec.cls), **kwargs}, spec.rule_args)


def retune(optimizer, cfg: dict) -> None:
    """Every param group's hyper-parameters set again from the option's mapping, as
    build_optimizer sets them (a value changed while the run trains: PBT's explore, a
    replayed schedule); the optimizer's state is left as it is. The lr is the group's
    optimizer.lr_scale times optimizer.lr."""
    spec = OPTIMIZERS.get(cfg["name"])
    kwargs = {key.name: _argument(key, cfg[key.name]) for key in spec.keys if key not in (LR_SCALE, TARGET)}
    for group in optimizer.param_groups:
        for name, value in kwargs.items():
            if name in group:
                group[name] = value * group.get("lr_scale", 1.0) if name == "lr" else value


def torch_defaults(cls: type) -> dict:
    """The torch class's own param-group defaults (read off its signature, without building
    one), so a saved state_dict is one the torch class loads too."""
    signature = inspect.signature(cls.__init__)
    defaults = {name: p.default for name, p in signature.parameters.items()
                if name not in ("self", "params") and p.default is not inspect.Parameter.empty}
    if cls is torch.optim.AdamW:
        defaults["decoupled_weight_decay"] = True
    return defaults


def _argument(key: Key, value):
    """A config value as the torch class takes it: lists (betas) as a tuple of floats, numbers
    as floats, integers (max_iter) and strings as they are."""
    if key.type is list:
        if key.check is not None and not key.check.test(value):
            raise ConfigError(f"optimizer.{key.name}={list(value)}: must be {key.check.expect}")
        return tuple(float(v) for v in value)
    return float(value) if key.type is float else value


def is_full_batch(cfg: dict) -> bool:
    return OPTIMIZERS.get(cfg["name"]).full_batch


def needs_closure(cfg: dict) -> bool:
    return OPTIMIZERS.get(cfg["name"]).closure


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's lr: `lr` times the group's optimizer.lr_scale factor (1 when it has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr


def clear_gradients(params: list[torch.nn.Parameter]) -> None:
    """optimizer.zero_grad(set_to_none=True), for any optimizer (and without torch.optim's
    profiler range around it)."""
    for p in params:
        p.grad = None
