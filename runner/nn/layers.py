"""Normalization and activation registries: the pluggable parts of every model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from runner.errors import ConfigError
from runner.registry import Registry

# ---------------------------------------------------------------- activations

@dataclass(frozen=True)
class Activation:
    make: Callable[[dict], nn.Module]
    gain_name: str  # for torch.nn.init.calculate_gain

    def gain_param(self, cfg: dict) -> float | None:
        return cfg.get("slope") if self.gain_name == "leaky_relu" else None


ACTIVATIONS: Registry[Activation] = Registry("activation")
ACTIVATIONS.register("identity")(Activation(lambda c: nn.Identity(), "linear"))
ACTIVATIONS.register("sigmoid")(Activation(lambda c: nn.Sigmoid(), "sigmoid"))
ACTIVATIONS.register("tanh")(Activation(lambda c: nn.Tanh(), "tanh"))
ACTIVATIONS.register("relu")(Activation(lambda c: nn.ReLU(), "relu"))
ACTIVATIONS.register("leaky_relu")(Activation(
    lambda c: nn.LeakyReLU(float(c.get("slope", 0.01))), "leaky_relu"))
# calculate_gain knows neither elu nor gelu; both are relu-like for positive inputs and
# near zero for negative ones, so they take relu's gain sqrt(2).
ACTIVATIONS.register("elu")(Activation(lambda c: nn.ELU(float(c.get("alpha", 1.0))), "relu"))
ACTIVATIONS.register("gelu")(Activation(lambda c: nn.GELU(), "relu"))


def make_activation(cfg: dict) -> nn.Module:
    return ACTIVATIONS.get(cfg["name"]).make(cfg)


# ---------------------------------------------------------------- normalization

@dataclass(frozen=True)
class Norm:
    """`layer(features, spatial, cfg)` builds the norm layer placed after a linear/conv layer
    (spatial=True for conv feature maps); None means no layer (e.g. weight normalization,
    which reparametrizes the linear/conv layer itself instead)."""

    layer: Callable[[int, bool, dict], nn.Module] | None
    reparametrize: Callable[[nn.Module, dict], nn.Module] | None = None


def _eps(cfg: dict) -> float:
    return float(cfg.get("eps", 1e-5))


def _batch_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    kind = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return kind(features, eps=_eps(cfg), momentum=float(cfg.get("momentum", 0.1)))


def _layer_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    # over all of (C, H, W) per sample for conv maps: GroupNorm with one group is exactly that
    return nn.GroupNorm(1, features, eps=_eps(cfg)) if spatial else nn.LayerNorm(features, eps=_eps(cfg))


def _group_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    groups = int(cfg.get("groups", 8))
    if features % groups:
        raise ConfigError(f"norm.groups={groups}: must divide the number of channels of every normalized "
                          f"layer, and one layer has {features}; pick a divisor of {features}")
    return nn.GroupNorm(groups, features, eps=_eps(cfg))


def _instance_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    if not spatial:
        # one feature per channel has no spatial extent to normalize over: the output would be all zeros
        raise ConfigError("norm=instance normalizes each channel over its pixels, so it needs conv feature "
                          "maps (model=cnn or model=resnet); for fully connected layers use norm=layer")
    return nn.InstanceNorm2d(features, eps=_eps(cfg), affine=bool(cfg.get("affine", True)))


def _weight_norm(module: nn.Module, cfg: dict) -> nn.Module:
    """Salimans & Kingma 2016: weight = g * v / ||v||, one g per output unit (norm over the rest)."""
    from torch.nn.utils.parametrizations import weight_norm

    return weight_norm(module, name="weight", dim=0)


NORMS: Registry[Norm] = Registry("norm")
NORMS.register("none")(Norm(None))
NORMS.register("batch")(Norm(_batch_norm))
NORMS.register("layer")(Norm(_layer_norm))
NORMS.register("group")(Norm(_group_norm))
NORMS.register("instance")(Norm(_instance_norm))
NORMS.register("weight")(Norm(None, reparametrize=_weight_norm))


def make_norm(cfg: dict, features: int, spatial: bool) -> nn.Module | None:
    spec = NORMS.get(cfg["name"])
    return spec.layer(features, spatial, cfg) if spec.layer else None


def reparametrize(module: nn.Module, cfg: dict) -> nn.Module:
    spec = NORMS.get(cfg["name"])
    return spec.reparametrize(module, cfg) if spec.reparametrize else module


def norm_and_activation(cfg: dict, features: int, spatial: bool) -> list[nn.Module]:
    """The norm layer and the activation in the configured order (norm.position=pre|post)."""
    norm = make_norm(cfg["norm"], features, spatial)
    act = make_activation(cfg["activation"])
    if norm is None:
        return [act]
    return [act, norm] if cfg["norm"].get("position", "pre") == "post" else [norm, act]
