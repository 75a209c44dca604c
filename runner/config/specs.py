"""Which spec speaks for each config group's mapping.

Most groups choose one option by its `name:` from a component's registry; augment's mapping
holds one entry per augmentation, each named by its key there (augment.flip.p); regularize,
trainer and diagnostics are keys-only groups: one spec, whatever their option file is called.
The trainer's and diagnostics' keys live here, since training (above config) reads them.
"""
from __future__ import annotations

import functools
from typing import Mapping

from optlab.errors import ConfigError
from optlab.registry import (
    HALF_OPEN_UNIT,
    NON_NEGATIVE,
    OPEN_UNIT,
    Check,
    Key,
    KeysOnlySpec,
    Registry,
    Spec,
    at_least,
)

GROUPS = ("data", "model", "init", "norm", "activation", "optimizer", "schedule",
          "batch", "augment", "regularize", "trainer", "diagnostics")

WATCHED_METRICS = ("val_acc", "val_loss")  # what best.pt and early stopping watch (val_acc: val_loss without accuracy)

THREAD_COUNT = Check(lambda v: isinstance(v, int) and v >= 1, ">= 1 (whole)")

FREEZE_PATTERNS = Check(lambda v: all(isinstance(p, str) and p for p in v), "a list of parameter-name prefixes or globs")

TRAINER = KeysOnlySpec(
    name="trainer",
    description="How to run: length, randomness, device, validation split and where results go.",
    keys=(Key("epochs", 20, NON_NEGATIVE),
          Key("seed", 0),
          Key("device", "auto", choices=("auto", "cpu", "cuda", "cuda:N"), pattern=r"auto|cpu|cuda(:\d+)?|mps"),
          Key("val_fraction", 0.2, OPEN_UNIT),
          Key("test_fraction", 0.0, HALF_OPEN_UNIT),
          Key("best_metric", "val_acc", choices=WATCHED_METRICS),
          Key("early_stop.patience", 0, NON_NEGATIVE),
          Key("early_stop.metric", "val_loss", choices=WATCHED_METRICS),
          Key("early_stop.min_delta", 0.0, NON_NEGATIVE),
          Key("eval_batch_size", 1024, at_least(1)),
          Key("progress", True),
          Key("log_every", 50, at_least(1)),
          Key("diagnostics", False),
          Key("precision", "32", choices=("32", "bf16", "16")),
          Key("name", "${data.name}-${model.name}-${optimizer.name}"),
          Key("out_dir", "outputs"),
          Key("data_on_device", "auto", choices=("auto", "true", "false")),
          Key("compile", "auto", choices=("auto", "true", "false")),
          Key("channels_last", False),
          Key("checkpoint_every_s", 60, NON_NEGATIVE),
          Key("tensorboard", False),
          Key("threads", "auto", THREAD_COUNT, words=("auto",)),
          Key("freeze", [], FREEZE_PATTERNS),
          Key("train_only", None, choices=("norm", "norm+head"), kind=str),
          Key("replay", None, kind=str)))

DIAGNOSTICS = KeysOnlySpec(
    name="diagnostics",
    description="Per-layer statistics written to layers.csv when trainer.diagnostics=true.",
    keys=(Key("every", 1, at_least(1)), Key("batch_size", 256, at_least(1))))


@functools.cache
def named_registries() -> dict[str, Registry]:
    """The registry of each group that chooses its option by `name:` (imported on first use:
    the components import torch)."""
    from optlab.data._base import DATASETS
    from optlab.nn.init import WEIGHT_INITS
    from optlab.nn.layers import ACTIVATIONS, NORMS
    from optlab.nn.models import MODELS
    from optlab.optim.batching import BATCH_PLANS
    from optlab.optim.optimizers import OPTIMIZERS
    from optlab.optim.schedules import SCHEDULES

    return {"data": DATASETS, "model": MODELS, "init": WEIGHT_INITS, "norm": NORMS, "activation": ACTIVATIONS,
            "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "batch": BATCH_PLANS}


def augmentations() -> Registry:
    from optlab.data.augment import AUGMENTATIONS

    return AUGMENTATIONS


KEYS_ONLY_GROUPS = ("regularize", "trainer", "diagnostics")  # one spec each, no `name:` to choose by


def keys_only_spec(group: str) -> KeysOnlySpec | None:
    if group not in KEYS_ONLY_GROUPS:
        return None
    if group == "regularize":
        from optlab.optim.regularize import REGULARIZE

        return REGULARIZE
    return {"trainer": TRAINER, "diagnostics": DIAGNOSTICS}[group]


def option_specs(group: str, values: Mapping) -> list[tuple[str, Spec]]:
    """(entry, spec) for each option in a group's mapping: entry is "" for the one option of
    most groups, the entry's key for each of augment's. Unknown names fail with the known ones."""
    keys_only = keys_only_spec(group)
    if keys_only is not None:
        return [("", keys_only)]
    if group == "augment":
        return [(entry, augmentations().get(entry)) for entry in values]
    registry = named_registries()[group]
    if "name" not in values:
        raise ConfigError(f"{group}.name: missing; a {group} option names the {group} it configures: "
                          f"{', '.join(registry.names())}")
    return [("", registry.get(values["name"]))]


def every_spec(group: str) -> list[Spec]:
    """The specs that options of this group can name."""
    keys_only = keys_only_spec(group)
    if keys_only is not None:
        return [keys_only]
    return list(augmentations() if group == "augment" else named_registries()[group])
