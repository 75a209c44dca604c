"""Models with pluggable normalization, activation, dropout and init (via optlab.init).

Every model is a `Network(features, head)`: `features` is built from `Block`s (linear/conv
-> norm -> activation -> dropout, or with norm after the activation when
norm.position=post) and `head` is the output linear layer, so initializers and
diagnostics treat all models alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from optlab.errors import ConfigError
from optlab.nn.layers import norm_and_activation, reparametrize
from optlab.registry import (
    HALF_OPEN_UNIT,
    NON_NEGATIVE,
    TARGET,
    Key,
    Registry,
    Spec,
    at_least,
    import_target,
)


class Block(nn.Sequential):
    """One layer of the network as the lectures draw it: affine map, norm, nonlinearity."""


def make_block(affine: nn.Module, features: int, spatial: bool, cfg: dict, dropout: float) -> Block:
    parts = [reparametrize(affine, cfg["norm"]), *norm_and_activation(cfg, features, spatial)]
    if dropout > 0:
        parts.append(nn.Dropout2d(dropout) if spatial else nn.Dropout(dropout))
    return Block(*parts)


class Network(nn.Module):
    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ModelBuilder = Callable[[dict, tuple, int], Network]  # (config, input shape, output dim)


@dataclass(frozen=True, kw_only=True)
class ModelSpec(Spec):
    build: ModelBuilder
    needs_images: bool = False  # (C, H, W) inputs: conv layers
    regression: bool = False  # meant for regression data (the loss follows the data's task)


MODELS: Registry[ModelSpec] = Registry("model")


def dropout_rate(cfg: dict) -> float:
    """regularize.dropout when set (not null, not deleted), else model.dropout."""
    override = cfg["regularize"].get("dropout")
    return float(override if override is not None else cfg["model"]["dropout"])


def require_images(cfg: dict, input_shape: tuple) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"model={cfg['model']['name']} needs image data (C, H, W); "
                          f"data={cfg['data']['name']} has shape {tuple(input_shape)}")


# ---------------------------------------------------------------- affine models

def build_affine(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    """One affine map of the flattened input: softmax regression on classification data,
    least-squares regression on regression data (the loss follows the data's task)."""
    return Network(nn.Flatten(), nn.Linear(math.prod(input_shape), out_dim))


def build_custom(cfg: dict, input_shape: tuple, out_dim: int) -> nn.Module:
    """model=custom: the user's builder, called with the model option's mapping."""
    spec, m = MODELS.get("custom"), cfg["model"]
    model = import_target("model._target_", m["_target_"], spec.target)(dict(m), tuple(input_shape), out_dim)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model._target_={m['_target_']}: returned {type(model).__name__}, not a torch.nn.Module")
    return model


# ---------------------------------------------------------------- MLP and CNN

def build_mlp(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    m = cfg["model"]
    width, depth = int(m["width"]), int(m["depth"])
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for _ in range(depth):
        layers.append(make_block(nn.Linear(features, width), width, False, cfg, dropout_rate(cfg)))
        features = width
    return Network(nn.Sequential(*layers), nn.Linear(features, out_dim))


def build_cnn(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    m = cfg["model"]
    channels, size = input_shape[0], input_shape[1]
    width = int(m["channels"])
    layers: list[nn.Module] = []
    for i in range(int(m["depth"])):
        if i > 0 and size >= 2:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        layers.append(make_block(nn.Conv2d(channels, width, 3, padding=1), width, True, cfg, 0.0))
        channels, width = width, width * 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout_rate(cfg) > 0:
        layers.append(nn.Dropout(dropout_rate(cfg)))
    return Network(nn.Sequential(*layers), nn.Linear(channels, out_dim))


# ---------------------------------------------------------------- pre-activation ResNet

class ResidualUnit(nn.Module):
    """He et al. 2016 (identity mappings): x + conv(Block(norm_act(x))).

    The Block is the first conv with its norm and activation; the second conv's output is
    added to the shortcut, and the next unit's norm_act comes after the sum. When the unit
    changes width or resolution the shortcut is a 1x1 conv of the pre-activated input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, cfg: dict, dropout: float):
        super().__init__()
        self.pre = nn.Sequential(*norm_and_activation(cfg, in_channels, True))
        first = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.block = make_block(first, out_channels, True, cfg, dropout)
        self.conv = reparametrize(nn.Conv2d(out_channels, out_channels, 3, padding=1), cfg["norm"])
        projects = stride != 1 or in_channels != out_channels
        self.shortcut = (reparametrize(nn.Conv2d(in_channels, out_channels, 1, stride=stride), cfg["norm"])
                         if projects else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x)
        skip = x if self.shortcut is None else self.shortcut(h)
        return skip + self.conv(self.block(h))


def build_resnet(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    """Three stages of `blocks` residual units at width w, 2w, 4w; stages 2 and 3 halve the
    resolution (32x32 -> 16x16 -> 8x8); blocks=3, width=16 is ResNet-20."""
    m = cfg["model"]
    width, blocks = int(m["width"]), int(m["blocks"])
    stem = reparametrize(nn.Conv2d(input_shape[0], width, 3, padding=1), cfg["norm"])
    layers: list[nn.Module] = [stem]
    channels = width
    for stage in range(3):
        out_channels = width * 2 ** stage
        for unit in range(blocks):
            stride = 2 if stage > 0 and unit == 0 else 1
            layers.append(ResidualUnit(channels, out_channels, stride, cfg, dropout_rate(cfg)))
            channels = out_channels
    # pre-activation units end on a bare conv: normalize and activate once before pooling
    layers += [*norm_and_activation(cfg, channels, True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Network(nn.Sequential(*layers), nn.Linear(channels, out_dim))


DROPOUT = Key("dropout", 0.0, HALF_OPEN_UNIT)

MODELS.add(ModelSpec(
    name="logistic", build=build_affine,
    description="A linear classifier on the flattened input (softmax regression)."))
MODELS.add(ModelSpec(
    name="linear", build=build_affine, regression=True,
    description="Linear regression: one affine map of the flattened input, trained with MSE (use data=linreg)."))
MODELS.add(ModelSpec(
    name="mlp", build=build_mlp,
    description="Fully connected net: `depth` hidden layers of `width` units (Linear -> norm -> activation -> dropout).",
    keys=(Key("depth", 2, NON_NEGATIVE), Key("width", 128, at_least(1)), DROPOUT)))
MODELS.add(ModelSpec(
    name="cnn", build=build_cnn, needs_images=True,
    description="Small conv net: `depth` blocks of 3x3 conv -> norm -> activation (channels double, 2x2 max-pool "
                "after each block but the first), then global average pooling and a linear classifier.",
    keys=(Key("channels", 32, at_least(1)), Key("depth", 3, NON_NEGATIVE), DROPOUT)))
MODELS.add(ModelSpec(
    name="resnet", build=build_resnet, needs_images=True,
    description="Small pre-activation ResNet (He et al. 2016) for 32x32 images; blocks=3, width=16 is ResNet-20. "
                "A 3x3 conv stem, then 3 stages of `blocks` residual units (norm -> activation -> conv, twice) at "
                "width w, 2w, 4w, the resolution halved at stages 2 and 3; norm -> activation, global average pool, "
                "linear head.",
    keys=(Key("blocks", 3, at_least(1)), Key("width", 16, at_least(1)), DROPOUT)))
MODELS.add(ModelSpec(
    name="custom", build=build_custom, keys=(TARGET,), target=("cfg", "input_shape", "out_dim"),
    description="Your own model: model._target_=module:function names a builder (cfg, input_shape, out_dim) -> "
                "nn.Module; cfg is the model option's mapping (any other keys you give it)."))


def build_model(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    spec = MODELS.get(cfg["model"]["name"])
    if spec.needs_images:
        require_images(cfg, input_shape)
    return spec.build(cfg, input_shape, out_dim)
