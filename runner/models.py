"""Models with pluggable normalization, activation, dropout and init (via runner.init).

Every model is a stack of `Block`s (linear/conv -> norm -> activation -> dropout, or with
norm after the activation when norm.position=post) followed by a `head` linear layer, so
initializers and diagnostics treat all models alike.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from runner.layers import make_activation, make_norm, reparametrize
from runner.registry import Registry


class Block(nn.Sequential):
    """One layer of the network as the lectures draw it: affine map, norm, nonlinearity."""


def make_block(affine: nn.Module, features: int, spatial: bool, cfg: dict, dropout: float) -> Block:
    norm_cfg, act_cfg = cfg["norm"], cfg["activation"]
    norm = make_norm(norm_cfg, features, spatial)
    parts: list[nn.Module] = [reparametrize(affine, norm_cfg)]
    act = make_activation(act_cfg)
    if norm is not None and norm_cfg.get("position", "pre") == "post":
        parts += [act, norm]
    else:
        parts += [norm, act] if norm is not None else [act]
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
MODELS: Registry[ModelBuilder] = Registry("model")


def dropout_rate(cfg: dict) -> float:
    override = (cfg.get("regularize") or {}).get("dropout")
    return float(override if override is not None else cfg["model"].get("dropout", 0.0))


@MODELS.register("logistic")
def build_logistic(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    return Network(nn.Flatten(), nn.Linear(math.prod(input_shape), out_dim))


@MODELS.register("mlp")
def build_mlp(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    m = cfg["model"]
    width, depth = int(m["width"]), int(m["depth"])
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for _ in range(depth):
        layers.append(make_block(nn.Linear(features, width), width, False, cfg, dropout_rate(cfg)))
        features = width
    return Network(nn.Sequential(*layers), nn.Linear(features, out_dim))


@MODELS.register("cnn")
def build_cnn(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    m = cfg["model"]
    if len(input_shape) != 3:
        from runner.errors import ConfigError
        raise ConfigError(f"model=cnn needs image data (C, H, W); data={cfg['data']['name']} has shape {input_shape}")
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


def build_model(cfg: dict, input_shape: tuple, out_dim: int) -> Network:
    return MODELS.get(cfg["model"]["name"])(cfg, input_shape, out_dim)
