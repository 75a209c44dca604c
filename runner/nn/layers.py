"""Normalization and activation registries: the pluggable parts of every model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from optlab.errors import ConfigError
from optlab.registry import NON_NEGATIVE, POSITIVE, UNIT, Key, Registry, Spec, at_least

# ---------------------------------------------------------------- activations


@dataclass(frozen=True, kw_only=True)
class ActivationSpec(Spec):
    make: Callable[[dict], nn.Module]
    gain_name: str  # for torch.nn.init.calculate_gain
    gain_param_key: str | None = None  # the key calculate_gain takes as its param (leaky_relu's slope)

    def gain_param(self, cfg: dict) -> float | None:
        return float(cfg[self.gain_param_key]) if self.gain_param_key else None


ACTIVATIONS: Registry[ActivationSpec] = Registry("activation")
ACTIVATIONS.add(ActivationSpec(
    name="identity", make=lambda c: nn.Identity(), gain_name="linear",
    description="No nonlinearity: the network is a product of linear maps (a deep linear network)."))
ACTIVATIONS.add(ActivationSpec(
    name="sigmoid", make=lambda c: nn.Sigmoid(), gain_name="sigmoid",
    description="The sigmoid nonlinearity: 1 / (1 + exp(-x))."))
ACTIVATIONS.add(ActivationSpec(
    name="tanh", make=lambda c: nn.Tanh(), gain_name="tanh", description="The tanh nonlinearity."))
ACTIVATIONS.add(ActivationSpec(
    name="relu", make=lambda c: nn.ReLU(), gain_name="relu", description="The relu nonlinearity: max(0, x)."))
ACTIVATIONS.add(ActivationSpec(
    name="leaky_relu", make=lambda c: nn.LeakyReLU(float(c["slope"])), gain_name="leaky_relu", gain_param_key="slope",
    description="Leaky relu: x for x > 0, slope * x otherwise (init gain sqrt(2 / (1 + slope^2))).",
    keys=(Key("slope", 0.01, NON_NEGATIVE),)))
# calculate_gain knows neither elu nor gelu; both are relu-like for positive inputs and
# near zero for negative ones, so they take relu's gain sqrt(2).
ACTIVATIONS.add(ActivationSpec(
    name="elu", make=lambda c: nn.ELU(float(c["alpha"])), gain_name="relu",
    description="ELU (Clevert et al. 2016): x for x > 0, alpha * (exp(x) - 1) otherwise; init gain sqrt(2) as relu.",
    keys=(Key("alpha", 1.0, POSITIVE),)))
ACTIVATIONS.add(ActivationSpec(
    name="gelu", make=lambda c: nn.GELU(), gain_name="relu",
    description="GELU (Hendrycks & Gimpel 2016): x * Phi(x), Phi the standard normal CDF; init gain sqrt(2) as relu."))


def make_activation(cfg: dict) -> nn.Module:
    return ACTIVATIONS.get(cfg["name"]).make(cfg)


# ---------------------------------------------------------------- normalization


@dataclass(frozen=True, kw_only=True)
class NormSpec(Spec):
    """`layer(features, spatial, cfg)` builds the norm layer placed after a linear/conv layer
    (spatial=True for conv feature maps); None means no layer (e.g. weight normalization,
    which reparametrizes the linear/conv layer itself instead)."""

    layer: Callable[[int, bool, dict], nn.Module] | None
    reparametrize: Callable[[nn.Module, dict], nn.Module] | None = None
    needs_feature_maps: bool = False  # only after conv layers (model=cnn or resnet)


class NoiseAfterNorm:
    """Santurkar et al. 2018's "noisy" BatchNorm (section 2.1): in training mode the norm
    layer's output y becomes y * s + m, with s ~ N(1, scale_std^2) and m ~ N(0, mean_std^2)
    drawn per unit (feature or channel, shared by the batch and the pixels) at every forward
    pass from the run's own generator (s first, then m), so each unit's distribution gets a
    fresh non-zero mean and non-unit scale at every step; eval mode is plain batch norm."""

    def __init__(self, *args, mean_std: float, scale_std: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.mean_std, self.scale_std = mean_std, scale_std
        self.generator: torch.Generator | None = None  # set by set_noise_generator before training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if not self.training:
            return y
        if self.generator is None:
            raise RuntimeError("norm.noise=true: the layer has no generator (set_noise_generator)")
        s, m = self.draw(y.shape[1], y.device)
        shape = (1, -1) + (1,) * (y.dim() - 2)  # [1, C] or [1, C, 1, 1]
        return y * s.view(shape) + m.view(shape)

    def draw(self, units: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, m) for one step: s ~ N(1, scale_std^2), m ~ N(0, mean_std^2), [units] each."""
        s = torch.randn(units, generator=self.generator, device=device).mul_(self.scale_std).add_(1.0)
        m = torch.randn(units, generator=self.generator, device=device).mul_(self.mean_std)
        return s, m


class NoisyBatchNorm1d(NoiseAfterNorm, nn.BatchNorm1d):
    pass


class NoisyBatchNorm2d(NoiseAfterNorm, nn.BatchNorm2d):
    pass


def set_noise_generator(model: nn.Module, generator: torch.Generator) -> bool:
    """Give every noisy norm layer the run's noise generator; whether the model has any."""
    layers = [m for m in model.modules() if isinstance(m, NoiseAfterNorm)]
    for layer in layers:
        layer.generator = generator
    return bool(layers)


def _batch_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    args = {"eps": float(cfg["eps"]), "momentum": float(cfg["momentum"])}
    if cfg.get("noise"):
        kind = NoisyBatchNorm2d if spatial else NoisyBatchNorm1d
        return kind(features, **args, mean_std=float(cfg["noise_mean_std"]), scale_std=float(cfg["noise_scale_std"]))
    kind = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return kind(features, **args)


def _layer_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    # over all of (C, H, W) per sample for conv maps: GroupNorm with one group is exactly that
    eps = float(cfg["eps"])
    return nn.GroupNorm(1, features, eps=eps) if spatial else nn.LayerNorm(features, eps=eps)


def _group_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    groups = int(cfg["groups"])
    if features % groups:
        raise ConfigError(f"norm.groups={groups}: must divide the number of channels of every normalized "
                          f"layer, and one layer has {features}; pick a divisor of {features}")
    return nn.GroupNorm(groups, features, eps=float(cfg["eps"]))


def _instance_norm(features: int, spatial: bool, cfg: dict) -> nn.Module:
    if not spatial:
        # one feature per channel has no spatial extent to normalize over: the output would be all zeros
        raise ConfigError("norm=instance normalizes each channel over its pixels, so it needs conv feature "
                          "maps (model=cnn or model=resnet); for fully connected layers use norm=layer")
    return nn.InstanceNorm2d(features, eps=float(cfg["eps"]), affine=bool(cfg["affine"]))


class WeightNorm(nn.Module):
    """Salimans & Kingma 2016's reparametrization, weight = g * v / ||v||, one g per output
    unit (the norm over the rest), as torch.nn.utils.parametrizations.weight_norm (the same
    parameter names: original0 is g, original1 is v) in ops vmap batches: torch's fused
    _weight_norm and norm_except_dim have no batching rule, so a population would run them
    member by member."""

    def forward(self, weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
        return weight_v * (weight_g / _unit_norms(weight_v))

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _unit_norms(weight), weight


def _unit_norms(weight: torch.Tensor) -> torch.Tensor:
    """Each output unit's L2 norm ([out, 1, ...]): torch.norm_except_dim(weight, 2, 0), which vmap cannot batch."""
    return torch.linalg.vector_norm(weight, dim=tuple(range(1, weight.dim())), keepdim=True)


def _weight_norm(module: nn.Module, cfg: dict) -> nn.Module:
    from torch.nn.utils.parametrize import register_parametrization

    return register_parametrization(module, "weight", WeightNorm())


EPS = Key("eps", 1.0e-5, POSITIVE)
POSITION = Key("position", "pre", choices=("pre", "post"))  # before or after the activation

NORMS: Registry[NormSpec] = Registry("norm")
NORMS.add(NormSpec(name="none", layer=None, description="No normalization layers.", keys=(POSITION,)))
NORMS.add(NormSpec(
    name="batch", layer=_batch_norm,
    description="Batch normalization (Ioffe & Szegedy 2015): batch statistics in training, running statistics in eval. "
                "noise=true: Santurkar et al. 2018's noisy BatchNorm, output y * s + m in training, s ~ N(1, "
                "noise_scale_std^2), m ~ N(0, noise_mean_std^2) per unit, redrawn every step.",
    keys=(Key("momentum", 0.1, UNIT), EPS, POSITION, Key("noise", False),
          Key("noise_mean_std", 0.5, NON_NEGATIVE), Key("noise_scale_std", 0.5, NON_NEGATIVE))))
NORMS.add(NormSpec(
    name="layer", layer=_layer_norm,
    description="Layer normalization: per-sample statistics over the features (and channels x pixels in CNNs).",
    keys=(EPS, POSITION)))
NORMS.add(NormSpec(
    name="group", layer=_group_norm,
    description="Group normalization (Wu & He 2018): per-sample statistics over each group of channels (and pixels).",
    keys=(Key("groups", 8, at_least(1)), EPS, POSITION)))
NORMS.add(NormSpec(
    name="instance", layer=_instance_norm, needs_feature_maps=True,
    description="Instance normalization: per-sample, per-channel statistics over the pixels; needs conv feature maps. "
                "Note: each normalized map has mean 0 (before the affine shift), so a global average pool right "
                "after it (model=cnn with position=post) sees only the learned shift: the pixels' information is lost.",
    keys=(Key("affine", True), EPS, POSITION)))
NORMS.add(NormSpec(
    name="weight", layer=None, reparametrize=_weight_norm,
    description="Weight normalization (Salimans & Kingma 2016): each layer's weight = g * v / ||v|| per output unit.",
    keys=(POSITION,)))


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
    return [act, norm] if cfg["norm"]["position"] == "post" else [norm, act]
