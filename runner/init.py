"""Weight and bias initializers, applied to every linear/conv layer of a model.

`init.name` picks the weight rule, `init.bias.name` the bias rule. Gains come from the
configured activation (torch.nn.init.calculate_gain), as Xavier and He et al. derive them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from runner.registry import Registry

WeightInit = Callable[[torch.Tensor, dict, float], None]  # (weight, init cfg, activation gain)
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


@WEIGHT_INITS.register("default")
def _default(weight, cfg, gain):
    pass  # the layer keeps the initialization PyTorch gave it at construction


@WEIGHT_INITS.register("xavier_uniform")
def _xavier_uniform(weight, cfg, gain):
    fan_in, fan_out = fans(weight)
    r = gain * math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -r, r)


@WEIGHT_INITS.register("kaiming_normal")
def _kaiming_normal(weight, cfg, gain):
    fan_in, fan_out = fans(weight)
    fan = fan_in if cfg.get("mode", "fan_in") == "fan_in" else fan_out
    nn.init.normal_(weight, 0.0, gain / math.sqrt(fan))


@BIAS_INITS.register("default")
def _bias_default(layer, cfg, ctx):
    pass


@BIAS_INITS.register("zeros")
def _bias_zeros(layer, cfg, ctx):
    nn.init.zeros_(layer.bias)


def init_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def set_weight(layer: nn.Module, weight: torch.Tensor) -> None:
    """Works for reparametrized layers too (weight norm): assignment goes through right_inverse."""
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(layer, "weight"):
        layer.weight = weight
    else:
        layer.weight.copy_(weight)


def activation_gain(act_cfg: dict) -> float:
    from runner.layers import ACTIVATIONS

    act = ACTIVATIONS.get(act_cfg["name"])
    return nn.init.calculate_gain(act.gain_name, act.gain_param(act_cfg))


@torch.no_grad()
def initialize(model: nn.Module, init_cfg: dict, act_cfg: dict, ctx: InitContext | None = None) -> None:
    """Apply the weight rule to every linear/conv layer, then the bias rule."""
    ctx = ctx or InitContext()
    weight_rule = WEIGHT_INITS.get(init_cfg["name"])
    bias_cfg = dict(init_cfg.get("bias") or {"name": "default"})
    bias_rule = BIAS_INITS.get(bias_cfg["name"])
    gain = activation_gain(act_cfg)
    layers = init_layers(model)
    head = getattr(model, "head", None)
    for layer in layers:
        weight = layer.weight.detach().clone()
        # the output layer feeds the loss, not an activation: it gets the linear gain (1)
        weight_rule(weight, init_cfg, 1.0 if layer is head else gain)
        set_weight(layer, weight)
    for layer in layers:
        if layer.bias is not None:
            bias_rule(layer, {**bias_cfg, "is_head": layer is head}, ctx)
    post = getattr(weight_rule, "after_all", None)
    if post is not None:  # data-dependent rules (e.g. LSUV) run once all layers are set
        post(model, init_cfg, ctx)
