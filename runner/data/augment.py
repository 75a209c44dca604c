"""Batched, on-device augmentations of training batches (never of the validation split).

The augment group is a mapping name -> parameters, applied in the order listed, so
`augment=[crop,flip]` crops then flips. Each augmentation maps (x, y, cfg, generator) to a
new (x, y), drawing all its randomness from that generator (so a resumed run augments
exactly as the uninterrupted one would). y may become soft class probabilities (mixup),
which cross-entropy accepts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from optlab.errors import ConfigError
from optlab.registry import NON_NEGATIVE, POSITIVE, UNIT, Key, Registry, Spec, at_least

Augmentation = Callable[[torch.Tensor, torch.Tensor, dict, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, kw_only=True)
class AugmentSpec(Spec):
    """One entry of the augment mapping, named by its key there (augment.flip.p), not by `name:`."""

    apply: Augmentation
    needs_images: bool = False  # (N, C, H, W) batches
    named: ClassVar[bool] = False


AUGMENTATIONS: Registry[AugmentSpec] = Registry("augment")


def _none(x, y, cfg, g):
    return x, y


def flip(x, y, cfg, g):
    """Mirror each image left-right with probability p."""
    chosen = torch.rand(len(x), generator=g, device=x.device) < float(cfg["p"])
    return torch.where(chosen[:, None, None, None], x.flip(-1), x), y


def crop(x, y, cfg, g):
    """Zero-pad by `padding` on every side, then take a random window of the original size."""
    pad = int(cfg["padding"])
    return _random_shift(x, pad, g), y


def translate(x, y, cfg, g):
    """Shift each image by whole pixels, independently up to max_shift in each direction, zero fill."""
    return _random_shift(x, int(cfg["max_shift"]), g), y


def noise(x, y, cfg, g):
    """Add N(0, std^2) noise to every input value (works on any input shape)."""
    return x + float(cfg["std"]) * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype), y


def cutout(x, y, cfg, g):
    """DeVries & Taylor 2017: zero a size x size square, placed uniformly inside each image."""
    n, _, height, width = x.shape
    size = int(cfg["size"])
    if size > min(height, width):
        raise ConfigError(f"augment.cutout.size={size}: larger than the {height}x{width} images")
    top = torch.randint(0, height - size + 1, (n, 1), generator=g, device=x.device)
    left = torch.randint(0, width - size + 1, (n, 1), generator=g, device=x.device)
    rows = torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device)
    in_rows = (rows >= top) & (rows < top + size)  # (N, H)
    in_cols = (cols >= left) & (cols < left + size)  # (N, W)
    square = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (N, 1, H, W)
    return x.masked_fill(square, 0.0), y


def mixup(x, y, cfg, g):
    """Zhang et al. 2018: one lam ~ Beta(alpha, alpha) per batch; x and the (one-hot) targets
    become lam * own + (1 - lam) * those of a random partner in the batch."""
    lam = _beta_sample(float(cfg["alpha"]), g)
    partner = torch.randperm(len(x), generator=g, device=x.device)
    targets = _soft_targets(y, cfg.get("num_classes"))
    return lam * x + (1 - lam) * x[partner], lam * targets + (1 - lam) * targets[partner]


def build_pipeline(augment_cfg: dict, num_classes: int | None = None) -> Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple]:
    """The augmentations of augment_cfg in order, as one function (x, y, generator) -> (x, y).

    num_classes (0 or None for regression) lets mixup turn class labels into soft targets.
    """
    steps = [(AUGMENTATIONS.get(name), {**(params or {}), "num_classes": num_classes})
             for name, params in augment_cfg.items() if name != "none"]

    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        for spec, params in steps:
            if spec.needs_images:
                _require_images(x, spec.name)
            x, y = spec.apply(x, y, params, g)
        return x, y

    apply.active = bool(steps)
    return apply


AUGMENTATIONS.add(AugmentSpec(name="none", apply=_none, description="No augmentation."))
AUGMENTATIONS.add(AugmentSpec(
    name="flip", apply=flip, needs_images=True, keys=(Key("p", 0.5, UNIT),),
    description="Mirror each training image left-right with probability p."))
AUGMENTATIONS.add(AugmentSpec(
    name="crop", apply=crop, needs_images=True, keys=(Key("padding", 2, NON_NEGATIVE),),
    description="Random crop: zero-pad each training image by `padding` pixels, then cut a window of the "
                "original size."))
AUGMENTATIONS.add(AugmentSpec(
    name="translate", apply=translate, needs_images=True, keys=(Key("max_shift", 1, NON_NEGATIVE),),
    description="Shift each training image by a random whole number of pixels, up to max_shift each way, zero fill."))
AUGMENTATIONS.add(AugmentSpec(
    name="noise", apply=noise, keys=(Key("std", 0.1, NON_NEGATIVE),),
    description="Add Gaussian noise N(0, std^2) to every (standardized) input value of the training batches."))
AUGMENTATIONS.add(AugmentSpec(
    name="cutout", apply=cutout, needs_images=True, keys=(Key("size", 3, at_least(1)),),
    description="Cutout (DeVries & Taylor 2017): zero a size x size square at a random place inside each "
                "training image."))
AUGMENTATIONS.add(AugmentSpec(
    name="mixup", apply=mixup, keys=(Key("alpha", 0.2, POSITIVE),),
    description="Mixup (Zhang et al. 2018): blend each training example and its one-hot label with a random "
                "partner's, lam ~ Beta(alpha, alpha) per batch; the targets become soft labels."))


# ---------------------------------------------------------------- helpers

def _require_images(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ConfigError(f"augment={name}: needs image inputs (N, C, H, W); this data has shape {tuple(x.shape[1:])}")


def _random_shift(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Each image moved by (dy, dx), both uniform in [-max_shift, max_shift]; vacated pixels are 0.

    Taking the window at (top, left) of the image zero-padded by max_shift is the same
    shift with dy = max_shift - top, so one gather does the whole batch.
    """
    if max_shift == 0:
        return x
    n, _, height, width = x.shape
    padded = F.pad(x, (max_shift,) * 4).permute(0, 2, 3, 1)  # (N, H + 2s, W + 2s, C)
    top = torch.randint(0, 2 * max_shift + 1, (n, 1), generator=g, device=x.device)
    left = torch.randint(0, 2 * max_shift + 1, (n, 1), generator=g, device=x.device)
    rows = (top + torch.arange(height, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (left + torch.arange(width, device=x.device))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)  # (N, C, H, W)


def _beta_sample(alpha: float, g: torch.Generator) -> float:
    """torch's Beta sampler takes no generator, so numpy draws it from a seed taken from g."""
    seed = torch.randint(0, 2**62, (1,), generator=g, device=g.device).item()
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _soft_targets(y: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    if y.is_floating_point():  # regression targets or already soft labels
        return y
    if not num_classes:
        raise ValueError("mixup of class labels needs num_classes: build_pipeline(cfg, num_classes=...)")
    return F.one_hot(y, num_classes).to(torch.float32)
