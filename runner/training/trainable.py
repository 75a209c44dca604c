"""Which parameters train, by name: trainer.freeze, trainer.train_only, optimizer.lr_scale."""
from __future__ import annotations

import fnmatch

import torch
from torch import nn

from optlab.errors import ConfigError

# the layers whose scale and shift trainer.train_only=norm trains (Frankle et al.)
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


def matches(name: str, pattern: str) -> bool:
    """A parameter name matches a prefix at a dot (`features.1` matches `features.1.0.weight`,
    not `features.10.weight`) or a glob (`features.*.weight`)."""
    return name == pattern or name.startswith(f"{pattern}.") or fnmatch.fnmatchcase(name, pattern)


def module_prefixes(names: list[str]) -> list[str]:
    """The names of the modules that hold the parameters, in the model's order."""
    return list(dict.fromkeys(name.rpartition(".")[0] or name for name in names))


def select(names: list[str], patterns: list[str], key: str) -> list[str]:
    """The names matching any of the patterns; a pattern that matches none is a ConfigError."""
    chosen: dict[str, None] = {}
    for pattern in patterns:
        hits = [name for name in names if matches(name, str(pattern))]
        if not hits:
            raise ConfigError(f"{key}: {pattern} matches no parameter; the parameters are under: "
                              f"{', '.join(module_prefixes(names))}")
        chosen.update(dict.fromkeys(hits))
    return [name for name in names if name in chosen]


def norm_parameter_names(model: nn.Module) -> list[str]:
    """The scale and shift of every normalization layer (batch, layer, group, instance norm)."""
    return [f"{module}.{name}" if module else name
            for module, layer in model.named_modules() if isinstance(layer, NORM_LAYERS)
            for name, _ in layer.named_parameters(recurse=False)]


def trained_only(model: nn.Module, which: str, norm_name: str) -> set[str]:
    """trainer.train_only: the norm layers' scale and shift (`norm`), and the head's (`norm+head`)."""
    trained = set(norm_parameter_names(model))
    if not trained:
        raise ConfigError(f"trainer.train_only={which}: norm={norm_name} gives the model no normalization layer with "
                          f"a scale and shift; choose norm=batch, layer, group or instance")
    if which == "norm+head":
        names = [name for name, _ in model.named_parameters()]
        trained.update(select(names, ["head"], f"trainer.train_only={which}"))
    return trained


def frozen_names(model: nn.Module, cfg: dict) -> list[str]:
    """The parameters that keep their initial values: trainer.freeze's, and with
    trainer.train_only everything it does not name."""
    t = cfg["trainer"]
    names = [name for name, _ in model.named_parameters()]
    frozen = set(select(names, list(t.get("freeze") or []), "trainer.freeze"))
    if t.get("train_only"):
        frozen |= set(names) - trained_only(model, t["train_only"], cfg["norm"]["name"])
    if names and frozen == set(names):
        why = f"trainer.train_only={t['train_only']}, " if t.get("train_only") else ""
        raise ConfigError(f"{why}trainer.freeze=[{', '.join(map(str, t.get('freeze') or []))}]: every parameter is "
                          "frozen, nothing would train")
    return [name for name in names if name in frozen]


def freeze(model: nn.Module, cfg: dict) -> list[str]:
    """Turn off the gradients of the frozen parameters (so they get no update, no weight decay
    and no optimizer state: the optimizer never sees them); their names."""
    frozen = frozen_names(model, cfg)
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return frozen


def param_groups(model: nn.Module, lr_scale: dict) -> list[torch.nn.Parameter] | list[dict]:
    """The trainable parameters, as one list, or with optimizer.lr_scale as param groups: the
    unscaled ones first (lr_scale 1), then one group per pattern, in the order written (a
    parameter joins the first pattern that matches it)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not lr_scale:
        return [p for _, p in named]
    all_names = [name for name, _ in model.named_parameters()]
    taken: set[str] = set()
    groups = []
    for pattern, scale in lr_scale.items():
        hits = set(select(all_names, [pattern], f"optimizer.lr_scale.{pattern}")) - taken
        groups.append({"params": [p for name, p in named if name in hits], "lr_scale": float(scale)})
        taken |= hits
    rest = {"params": [p for name, p in named if name not in taken], "lr_scale": 1.0}
    return [g for g in (rest, *groups) if g["params"]]
