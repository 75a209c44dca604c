"""Normalization and activation registries: the pluggable parts of every model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

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


NORMS: Registry[Norm] = Registry("norm")
NORMS.register("none")(Norm(None))


NORMS.register("batch")(Norm(
    lambda n, spatial, c: (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(
        n, eps=float(c.get("eps", 1e-5)), momentum=float(c.get("momentum", 0.1)))
))
NORMS.register("layer")(Norm(
    # over all of (C, H, W) per sample for conv maps: GroupNorm with one group is exactly that
    lambda n, spatial, c: nn.GroupNorm(1, n, eps=float(c.get("eps", 1e-5))) if spatial
    else nn.LayerNorm(n, eps=float(c.get("eps", 1e-5)))
))


def make_norm(cfg: dict, features: int, spatial: bool) -> nn.Module | None:
    spec = NORMS.get(cfg["name"])
    return spec.layer(features, spatial, cfg) if spec.layer else None


def reparametrize(module: nn.Module, cfg: dict) -> nn.Module:
    spec = NORMS.get(cfg["name"])
    return spec.reparametrize(module, cfg) if spec.reparametrize else module
