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

from runner.errors import ConfigError
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
    r = 1.0 / math.sqrt(fans(weight)[0])
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


@WEIGHT_INITS.register("kaiming_uniform")
def _kaiming_uniform(weight, cfg, gain):
    r = gain * math.sqrt(3.0 / mode_fan(weight, cfg))
    nn.init.uniform_(weight, -r, r)


@WEIGHT_INITS.register("kaiming_normal")
def _kaiming_normal(weight, cfg, gain):
    nn.init.normal_(weight, 0.0, gain / math.sqrt(mode_fan(weight, cfg)))


@WEIGHT_INITS.register("orthogonal")
def _orthogonal(weight, cfg, gain):
    """Saxe et al. 2014: a (semi-)orthogonal matrix times gain (init.gain, or the activation's)."""
    chosen = cfg.get("gain")
    nn.init.orthogonal_(weight, gain=float(chosen) if chosen is not None else gain)


@WEIGHT_INITS.register("lsuv")
def _lsuv(weight, cfg, gain):
    """Mishkin & Matas 2016, step 1: orthonormal; step 2 (after_all) rescales on data."""
    nn.init.orthogonal_(weight)


def _lsuv_rescale(model: nn.Module, cfg: dict, ctx: InitContext) -> None:
    """Layer by layer in forward order, scale the weight so the layer's output has variance 1
    on the training batch (earlier layers are final by then, so one scaling is exact)."""
    if ctx.x_batch is None or len(ctx.x_batch) < 2:
        raise ConfigError("init=lsuv needs a training batch of at least 2 samples to measure layer outputs")
    was_training = model.training
    model.eval()  # dropout off; batch-norm running statistics are not updated
    try:
        for layer in init_layers(model):
            variance = output_variance(model, layer, ctx.x_batch)
            if variance > 1e-12:  # a layer with constant output cannot be rescaled to unit variance
                set_weight(layer, layer.weight.detach() / math.sqrt(variance))
    finally:
        model.train(was_training)


_lsuv.after_all = _lsuv_rescale


def output_variance(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> float:
    """The variance of each output unit (channel) over the batch and pixels, averaged over
    units: the bias shifts a unit's mean, not its spread, so scaling the weight by s scales
    this by exactly s^2."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        model(x)
    finally:
        handle.remove()
    out = captured[0]
    dims = [0, *range(2, out.dim())]
    return out.var(dim=dims).mean().item()


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
