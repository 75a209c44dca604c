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

from optlab.errors import ConfigError
from optlab.registry import NON_NEGATIVE, POSITIVE, TARGET, Key, Registry, Spec, import_target

WeightInit = Callable[[torch.Tensor, dict, float], None]  # (weight, init cfg, gain)
BiasInit = Callable[[nn.Module, dict, "InitContext"], None]  # (layer, bias cfg + is_head, context)


@dataclass
class InitContext:
    """What data-dependent rules may look at: a training batch and the training labels."""

    x_batch: torch.Tensor | None = None
    y_train: torch.Tensor | None = None
    num_classes: int = 0


def fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = weight[0][0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def activation_of(act_cfg: dict):
    from optlab.nn.layers import ACTIVATIONS

    return ACTIVATIONS.get(act_cfg["name"])


def activation_gain(act_cfg: dict) -> float:
    act = activation_of(act_cfg)
    return nn.init.calculate_gain(act.gain_name, act.gain_param(act_cfg))


def unit_gain(act_cfg: dict) -> float:
    return 1.0


def he_gain(act_cfg: dict) -> float:
    """He et al. 2015: sqrt(2 / (1 + a^2)), a the negative slope of a leaky ReLU (PReLU in the
    paper) and 0 for every other activation, as torch's kaiming_*_ default (a=0) gives."""
    if activation_of(act_cfg).gain_name == "leaky_relu":
        return activation_gain(act_cfg)  # calculate_gain('leaky_relu', a) is that formula
    return math.sqrt(2.0)


# ---------------------------------------------------------------- bias rules


@dataclass(frozen=True, kw_only=True)
class BiasSpec(Spec):
    """A rule for init.bias.name (a value of that key, not an option of a group)."""

    apply: BiasInit


def _bias_default(layer, cfg, ctx):
    pass


def _bias_zeros(layer, cfg, ctx):
    nn.init.zeros_(layer.bias)


def _bias_constant(layer, cfg, ctx):
    nn.init.constant_(layer.bias, float(cfg["value"]))


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


BIAS_INITS: Registry[BiasSpec] = Registry("init.bias")
BIAS_INITS.add(BiasSpec(name="default", apply=_bias_default,
                        description="PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))"))
BIAS_INITS.add(BiasSpec(name="zeros", apply=_bias_zeros, description="every bias 0"))
BIAS_INITS.add(BiasSpec(name="constant", apply=_bias_constant, description="every bias init.bias.value"))
BIAS_INITS.add(BiasSpec(name="output_prior", apply=_bias_output_prior,
                        description="the head's bias gives the training marginal, the other biases 0"))


def bias_keys(rule: str = "zeros") -> tuple[Key, ...]:
    """The bias rule and its value, last in every init option."""
    return (Key("bias.name", rule, choices=tuple(BIAS_INITS.names())), Key("bias.value", 0.0))


# ---------------------------------------------------------------- weight rules


# init.from: a run folder whose weights replace the drawn ones where names and shapes fit
# (runner/training/transfer.py); init.from_checkpoint: its best.pt or its last checkpoint.pt
SOURCE_KEYS = (Key("from", None, kind=str), Key("from_checkpoint", "best", choices=("best", "last")))


@dataclass(frozen=True, kw_only=True)
class InitSpec(Spec):
    draw: WeightInit  # fills one layer's weight
    paper_gain: Callable[[dict], float] = unit_gain  # the gain when init.gain is null, from the activation's cfg
    # runs once every layer is set, on data (LSUV): (model, init cfg, context)
    after_all: Callable[[nn.Module, dict, InitContext], None] | None = None

    def __post_init__(self):
        object.__setattr__(self, "keys", self.keys + SOURCE_KEYS)  # keys every init option takes, last


def gain_key(default: float | None) -> Key:
    """init.gain: null for the rule's paper gain, `activation` for the activation's, or a number."""
    return Key("gain", default, POSITIVE, words=("activation",), kind=float)


def mode_key() -> Key:
    # fan_in keeps the forward signal's variance; fan_out the backward gradient's
    return Key("mode", "fan_in", choices=("fan_in", "fan_out"))


def _default(weight, cfg, gain):
    pass  # the layer keeps the initialization PyTorch gave it at construction


def _zeros(weight, cfg, gain):
    nn.init.zeros_(weight)


def _constant(weight, cfg, gain):
    nn.init.constant_(weight, float(cfg["value"]))


def _normal(weight, cfg, gain):
    nn.init.normal_(weight, 0.0, float(cfg["std"]))


def _uniform(weight, cfg, gain):
    r = float(cfg["r"])
    nn.init.uniform_(weight, -r, r)


def _lecun_uniform(weight, cfg, gain):
    r = math.sqrt(3.0 / fans(weight)[0])  # variance 1/fan_in, as lecun_normal's
    nn.init.uniform_(weight, -r, r)


def _lecun_normal(weight, cfg, gain):
    nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(fans(weight)[0]))


def _xavier_uniform(weight, cfg, gain):
    fan_in, fan_out = fans(weight)
    r = gain * math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -r, r)


def _xavier_normal(weight, cfg, gain):
    fan_in, fan_out = fans(weight)
    nn.init.normal_(weight, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def mode_fan(weight: torch.Tensor, cfg: dict) -> int:
    fan_in, fan_out = fans(weight)
    return fan_in if cfg["mode"] == "fan_in" else fan_out


def _kaiming_uniform(weight, cfg, gain):
    r = gain * math.sqrt(3.0 / mode_fan(weight, cfg))
    nn.init.uniform_(weight, -r, r)


def _kaiming_normal(weight, cfg, gain):
    nn.init.normal_(weight, 0.0, gain / math.sqrt(mode_fan(weight, cfg)))


def _orthogonal(weight, cfg, gain):
    """Saxe et al. 2014: a (semi-)orthogonal matrix times gain."""
    nn.init.orthogonal_(weight, gain=gain)


def _lsuv(weight, cfg, gain):
    """Mishkin & Matas 2016, step 1: orthonormal; step 2 (lsuv_rescale, after all layers) rescales on data."""
    nn.init.orthogonal_(weight)


def lsuv_rescale(model: nn.Module, cfg: dict, ctx: InitContext) -> None:
    """Layer by layer in forward order, divide the weight by sqrt(Var(B_L)), B_L the layer's
    output on the training batch, until |Var(B_L) - 1| < tol_var or t_max tries."""
    if ctx.x_batch is None or len(ctx.x_batch) < 2:
        raise ConfigError("init=lsuv needs a training batch of at least 2 samples to measure layer outputs")
    tol_var, t_max = float(cfg["tol_var"]), int(cfg["t_max"])
    was_training = model.training
    model.eval()  # dropout off; batch-norm running statistics are not updated
    try:
        for layer in init_layers(model):
            scale_to_unit_variance(model, layer, ctx.x_batch, tol_var, t_max)
    finally:
        model.train(was_training)


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


WEIGHT_INITS: Registry[InitSpec] = Registry("init")
WEIGHT_INITS.add(InitSpec(
    name="default", draw=_default, keys=bias_keys("default"),
    description="PyTorch's own initialization of each layer (weights kaiming_uniform with a=sqrt(5): "
                "U(-1/sqrt(fan_in), 1/sqrt(fan_in))). No gain."))
WEIGHT_INITS.add(InitSpec(
    name="zeros", draw=_zeros, keys=bias_keys(),
    description="All weights zero: every unit of a layer stays identical (the symmetry problem, for study). No gain."))
WEIGHT_INITS.add(InitSpec(
    name="constant", draw=_constant, keys=(Key("value", 0.01), *bias_keys()),
    description="Every weight set to `value`: like zeros, units of a layer never become different. No gain."))
WEIGHT_INITS.add(InitSpec(
    name="normal", draw=_normal, keys=(Key("std", 0.01, NON_NEGATIVE), *bias_keys()),
    description="The small Gaussian: N(0, std^2) with a fixed std, whatever the layer's size. No gain."))
WEIGHT_INITS.add(InitSpec(
    name="uniform", draw=_uniform, keys=(Key("r", 0.05, NON_NEGATIVE), *bias_keys()),
    description="U(-r, r) with a fixed r, whatever the layer's size. No gain."))
WEIGHT_INITS.add(InitSpec(
    name="lecun_uniform", draw=_lecun_uniform, keys=bias_keys(),
    description="LeCun et al. 1998: U(-r, r), r = sqrt(3 / fan_in), so the variance is 1/fan_in as the paper "
                "asks (Keras' lecun_uniform). No gain. Torch7's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) is init=default."))
WEIGHT_INITS.add(InitSpec(
    name="lecun_normal", draw=_lecun_normal, keys=bias_keys(),
    description="LeCun et al. 1998: N(0, 1/fan_in), which keeps unit variance through linear layers. No gain."))
WEIGHT_INITS.add(InitSpec(
    name="xavier_uniform", draw=_xavier_uniform, keys=(gain_key(1.0), *bias_keys()),
    description="Glorot & Bengio 2010: U(-r, r), r = gain * sqrt(6 / (fan_in + fan_out)), as torch's "
                "xavier_uniform_. Takes init.gain: 1 by default (the paper's and torch's), `activation` for the "
                "activation's calculate_gain, or a number; one gain for every layer, the output layer included."))
WEIGHT_INITS.add(InitSpec(
    name="xavier_normal", draw=_xavier_normal, keys=(gain_key(1.0), *bias_keys()),
    description="Glorot & Bengio 2010: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)), as torch's "
                "xavier_normal_ (the paper draws the uniform form with this variance). Takes init.gain: 1 by "
                "default (the paper's and torch's), `activation` for the activation's calculate_gain, or a number; "
                "one gain for every layer, the output layer included."))
WEIGHT_INITS.add(InitSpec(
    name="kaiming_uniform", draw=_kaiming_uniform, paper_gain=he_gain,
    keys=(mode_key(), gain_key(None), *bias_keys()),
    description="He et al. 2015's variance as U(-r, r), r = gain * sqrt(3 / fan_mode), as torch's "
                "kaiming_uniform_ (the paper draws Gaussians). Takes init.gain: null by default, He et al.'s "
                "sqrt(2 / (1 + a^2)) with a = activation.slope under leaky_relu, else 0 (torch's default a=0); "
                "`activation` for the activation's calculate_gain, or a number; every layer."))
WEIGHT_INITS.add(InitSpec(
    name="kaiming_normal", draw=_kaiming_normal, paper_gain=he_gain,
    keys=(mode_key(), gain_key(None), *bias_keys()),
    description="He et al. 2015: N(0, std^2), std = gain / sqrt(fan_mode), as torch's kaiming_normal_. Takes "
                "init.gain: null by default, He et al.'s sqrt(2 / (1 + a^2)) with a = activation.slope under "
                "leaky_relu, else 0 (torch's default a=0: sqrt(2) under tanh too); `activation` for the "
                "activation's calculate_gain, or a number; every layer, output included."))
WEIGHT_INITS.add(InitSpec(
    name="orthogonal", draw=_orthogonal, keys=(gain_key(1.0), *bias_keys()),
    description="Saxe et al. 2014: a random (semi-)orthogonal weight matrix times gain, as torch's orthogonal_ "
                "(conv kernels flattened). Takes init.gain: 1 by default (torch's), `activation` for the "
                "activation's calculate_gain, or a number; one gain for every layer, the output layer included."))
WEIGHT_INITS.add(InitSpec(
    name="lsuv", draw=_lsuv, after_all=lsuv_rescale,
    # Tol_var and T_max of Algorithm 1: the defaults of the authors' Keras code (margin, max_iter)
    keys=(Key("tol_var", 0.1, POSITIVE), Key("t_max", 10, NON_NEGATIVE), *bias_keys()),
    description="LSUV (Mishkin & Matas 2016): orthonormal weights, then layer by layer in forward order "
                "W /= sqrt(Var(B_L)), B_L all of the layer's outputs on one training batch (up to 512 samples, "
                "reused on every try, in eval mode: dropout off, batch-norm running statistics untouched, as the "
                "authors' code), until |Var(B_L) - 1| < tol_var or t_max tries. No gain."))



def _whole_model(weight: torch.Tensor, init_cfg: dict, gain: float) -> None:
    raise RuntimeError("init=custom initializes the whole model in initialize(), not layer by layer")


WEIGHT_INITS.add(InitSpec(
    name="custom", draw=_whole_model, keys=(TARGET,), target=("cfg", "module"),
    description="Your own init: init._target_=module:function names a function (cfg, module) -> None that "
                "initializes the whole model in place (no bias rule); cfg is the init option's mapping. No gain."))


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


def rule_gain(rule: InitSpec, init_cfg: dict, act_cfg: dict) -> float:
    """init.gain: a number, `activation` for the activation's gain, or null (or absent: the
    rules without a gain) for the rule's paper default (1; He et al.'s for kaiming)."""
    chosen = init_cfg.get("gain")
    if chosen is None:
        return rule.paper_gain(act_cfg)
    if chosen == "activation":
        return activation_gain(act_cfg)
    return float(chosen)


@torch.no_grad()
def initialize(model: nn.Module, init_cfg: dict, act_cfg: dict, ctx: InitContext | None = None) -> None:
    """Apply the weight rule to every linear/conv layer, then the bias rule, then the rule's
    after_all step (data-dependent rules such as LSUV)."""
    ctx = ctx or InitContext()
    rule = WEIGHT_INITS.get(init_cfg["name"])
    if rule.target:  # init=custom: the user's function sets every parameter
        import_target("init._target_", init_cfg["_target_"], rule.target)(dict(init_cfg), model)
        return
    bias_cfg = init_cfg["bias"]
    bias_rule = BIAS_INITS.get(bias_cfg["name"])
    gain = rule_gain(rule, init_cfg, act_cfg)
    layers = init_layers(model)
    head = getattr(model, "head", None)
    for layer in layers:
        weight = layer.weight.detach().clone()
        rule.draw(weight, init_cfg, gain)
        set_weight(layer, weight)
    for layer in layers:
        if layer.bias is not None:
            bias_rule.apply(layer, {**bias_cfg, "is_head": layer is head}, ctx)
    if rule.after_all is not None:
        rule.after_all(model, init_cfg, ctx)
