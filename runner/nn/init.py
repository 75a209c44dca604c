"""Weight and bias initializers, applied to every linear/conv layer of a model.

`init.name` picks the weight rule, `init.bias.name` the bias rule. Every default is the
paper's (and torch's): Xavier and orthogonal scale by gain 1, Kaiming by He et al.'s
sqrt(2 / (1 + a^2)). `init.gain=activation` (torch.nn.init.calculate_gain of the configured
activation) or a number opts into another gain; one gain scales every layer, the output layer
included, as calling torch's function on each layer does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from runner.errors import ConfigError
from runner.registry import Registry

WeightInit = Callable[[torch.Tensor, dict, float], None]  # (weight, init cfg, gain)
BiasInit = Callable[[nn.Module, dict, "InitContext"], None]


@dataclass
class InitContext:
    """What data-dependent rules may look at: a training batch and the training labels."""

    x_batch: torch.Tensor | None = None
    y_train: torch.Tensor | None = None
    num_classes: int = 0


WEIGHT_INITS: Registry[WeightInit] = Registry("init")
BIAS_INITS: Registry[BiasInit] = Registry("init.bias")


def fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = weight[0][0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


# ---------------------------------------------------------------- weight rules

@WEIGHT_INITS.register("default")
def _default(weight, cfg, gain):
    pass  # the layer keeps the initialization PyTorch gave it at construction


@WEIGHT_INITS.register("zeros")
def _zeros(weight, cfg, gain):
    nn.init.zeros_(weight)


@WEIGHT_INITS.register("constant")
def _constant(weight, cfg, gain):
    nn.init.constant_(weight, float(cfg["value"]))


@WEIGHT_INITS.register("normal")
def _normal(weight, cfg, gain):
    nn.init.normal_(weight, 0.0, float(cfg["std"]))


@WEIGHT_INITS.register("uniform")
def _uniform(weight, cfg, gain):
    r = float(cfg["r"])
    nn.init.uniform_(weight, -r, r)


@WEIGHT_INITS.register("lecun_uniform")
def _lecun_uniform(weight, cfg, gain):
    r = math.sqrt(3.0 / fans(weight)[0])  # variance 1/fan_in, as lecun_normal's
    nn.init.uniform_(weight, -r, r)


@WEIGHT_INITS.register("lecun_normal")
def _lecun_normal(weight, cfg, gain):
    nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(fans(weight)[0]))


@WEIGHT_INITS.register("xavier_uniform")
def _xavier_uniform(weight, cfg, gain):
    fan_in, fan_out = fans(weight)
    r = gain * math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -r, r)


@WEIGHT_INITS.register("xavier_normal")
def _xavier_normal(weight, cfg, gain):
    fan_in, fan_out = fans(weight)
    nn.init.normal_(weight, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def mode_fan(weight: torch.Tensor, cfg: dict) -> int:
    fan_in, fan_out = fans(weight)
    return fan_in if cfg.get("mode", "fan_in") == "fan_in" else fan_out


def he_gain(act_cfg: dict) -> float:
    """He et al. 2015: sqrt(2 / (1 + a^2)), a the negative slope of a leaky ReLU (PReLU in the
    paper) and 0 for every other activation, as torch's kaiming_*_ default (a=0) gives."""
    if activation_of(act_cfg).gain_name == "leaky_relu":
        return activation_gain(act_cfg)  # calculate_gain('leaky_relu', a) is that formula
    return math.sqrt(2.0)


@WEIGHT_INITS.register("kaiming_uniform")
def _kaiming_uniform(weight, cfg, gain):
    r = gain * math.sqrt(3.0 / mode_fan(weight, cfg))
    nn.init.uniform_(weight, -r, r)


@WEIGHT_INITS.register("kaiming_normal")
def _kaiming_normal(weight, cfg, gain):
    nn.init.normal_(weight, 0.0, gain / math.sqrt(mode_fan(weight, cfg)))


_kaiming_uniform.paper_gain = _kaiming_normal.paper_gain = he_gain


@WEIGHT_INITS.register("orthogonal")
def _orthogonal(weight, cfg, gain):
    """Saxe et al. 2014: a (semi-)orthogonal matrix times gain."""
    nn.init.orthogonal_(weight, gain=gain)


@WEIGHT_INITS.register("lsuv")
def _lsuv(weight, cfg, gain):
    """Mishkin & Matas 2016, step 1: orthonormal; step 2 (after_all) rescales on data."""
    nn.init.orthogonal_(weight)


# Tol_var and T_max of Algorithm 1: the defaults of the authors' Keras code (margin, max_iter).
LSUV_TOL_VAR = 0.1
LSUV_T_MAX = 10


def _lsuv_rescale(model: nn.Module, cfg: dict, ctx: InitContext) -> None:
    """Layer by layer in forward order, divide the weight by sqrt(Var(B_L)), B_L the layer's
    output on the training batch, until |Var(B_L) - 1| < tol_var or t_max tries."""
    if ctx.x_batch is None or len(ctx.x_batch) < 2:
        raise ConfigError("init=lsuv needs a training batch of at least 2 samples to measure layer outputs")
    tol_var = float(cfg.get("tol_var", LSUV_TOL_VAR))
    t_max = int(cfg.get("t_max", LSUV_T_MAX))
    was_training = model.training
    model.eval()  # dropout off; batch-norm running statistics are not updated
    try:
        for layer in init_layers(model):
            scale_to_unit_variance(model, layer, ctx.x_batch, tol_var, t_max)
    finally:
        model.train(was_training)


_lsuv.after_all = _lsuv_rescale


def scale_to_unit_variance(model: nn.Module, layer: nn.Module, x: torch.Tensor, tol_var: float, t_max: int) -> None:
    for _ in range(t_max):
        variance = output_variance(model, layer, x)
        # a layer with constant output cannot be rescaled to unit variance
        if abs(variance - 1.0) < tol_var or variance <= 1e-12:
            return
        set_weight(layer, layer.weight.detach() / math.sqrt(variance))


def output_variance(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> float:
    """Var(B_L): the variance of all of the layer's outputs on the batch (every unit, sample and
    pixel together, as the authors' code's np.var of the output blob)."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        model(x)
    finally:
        handle.remove()
    return captured[0].var(correction=0).item()


# ---------------------------------------------------------------- bias rules

@BIAS_INITS.register("default")
def _bias_default(layer, cfg, ctx):
    pass


@BIAS_INITS.register("zeros")
def _bias_zeros(layer, cfg, ctx):
    nn.init.zeros_(layer.bias)


@BIAS_INITS.register("constant")
def _bias_constant(layer, cfg, ctx):
    nn.init.constant_(layer.bias, float(cfg["value"]))


@BIAS_INITS.register("output_prior")
def _bias_output_prior(layer, cfg, ctx):
    """The head's bias makes the initial prediction the training marginal (other biases 0):
    log class frequencies for softmax, the mean target for regression. The prediction is
    exactly the marginal when the head's weights are zero, and close to it when small."""
    nn.init.zeros_(layer.bias)
    if not cfg["is_head"]:
        return
    if ctx.y_train is None:
        raise ConfigError("init.bias.name=output_prior needs the training labels")
    prior = log_class_frequencies(ctx.y_train, ctx.num_classes) if ctx.num_classes else target_mean(ctx.y_train)
    layer.bias.copy_(prior.to(layer.bias))


def log_class_frequencies(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    # a class missing from the training split counts once, so its logit stays finite
    counts = torch.bincount(labels.long(), minlength=num_classes).clamp(min=1).double()
    return torch.log(counts / counts.sum())


def target_mean(targets: torch.Tensor) -> torch.Tensor:
    return targets.double().mean(dim=0).reshape(-1)


# ---------------------------------------------------------------- applying them

def init_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def set_weight(layer: nn.Module, weight: torch.Tensor) -> None:
    """Works for reparametrized layers too (weight norm): assignment goes through right_inverse."""
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(layer, "weight"):
        layer.weight = weight
    else:
        layer.weight.copy_(weight)


def activation_of(act_cfg: dict):
    from runner.nn.layers import ACTIVATIONS

    return ACTIVATIONS.get(act_cfg["name"])


def activation_gain(act_cfg: dict) -> float:
    act = activation_of(act_cfg)
    return nn.init.calculate_gain(act.gain_name, act.gain_param(act_cfg))


def unit_gain(act_cfg: dict) -> float:
    return 1.0


def rule_gain(weight_rule: WeightInit, init_cfg: dict, act_cfg: dict) -> float:
    """init.gain: a number, `activation` for the activation's gain, or null (or absent) for
    the rule's paper default (1; He et al.'s for kaiming)."""
    chosen = init_cfg.get("gain")
    if chosen is None:
        return getattr(weight_rule, "paper_gain", unit_gain)(act_cfg)
    if chosen == "activation":
        return activation_gain(act_cfg)
    return float(chosen)


@torch.no_grad()
def initialize(model: nn.Module, init_cfg: dict, act_cfg: dict, ctx: InitContext | None = None) -> None:
    """Apply the weight rule to every linear/conv layer, then the bias rule."""
    ctx = ctx or InitContext()
    weight_rule = WEIGHT_INITS.get(init_cfg["name"])
    bias_cfg = dict(init_cfg.get("bias") or {"name": "default"})
    bias_rule = BIAS_INITS.get(bias_cfg["name"])
    gain = rule_gain(weight_rule, init_cfg, act_cfg)
    layers = init_layers(model)
    head = getattr(model, "head", None)
    for layer in layers:
        weight = layer.weight.detach().clone()
        weight_rule(weight, init_cfg, gain)
        set_weight(layer, weight)
    for layer in layers:
        if layer.bias is not None:
            bias_rule(layer, {**bias_cfg, "is_head": layer is head}, ctx)
    post = getattr(weight_rule, "after_all", None)
    if post is not None:  # data-dependent rules (e.g. LSUV) run once all layers are set
        post(model, init_cfg, ctx)
