"""data.keep_classes: a classification pool cut to some of its classes, relabelled 0..M-1."""
from __future__ import annotations

from dataclasses import replace

import torch

from optlab.errors import ConfigError
from optlab.registry import Check, Key


def _class_list(value) -> bool:
    return (isinstance(value, list) and len(value) > 0 and len(set(value)) == len(value)
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value))


# keys every data option takes (null: every class)
SUBSET_KEYS = (Key("keep_classes", None, Check(_class_list, "a list of distinct class labels >= 0"), kind=list),)


def relabel(y: torch.Tensor, classes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of the samples in `classes`, their labels as positions in `classes`)."""
    wanted = torch.tensor(classes, dtype=y.dtype)
    mask = torch.isin(y, wanted)
    lookup = torch.full((max(int(y.max()), max(classes)) + 1,), -1, dtype=y.dtype)
    lookup[wanted] = torch.arange(len(classes), dtype=y.dtype)
    return mask, lookup[y[mask]]


def keep_classes(pool, data_cfg: dict):
    """The pool (and its test files' split, if any) with only data.keep_classes' samples, the
    i-th listed class labelled i (data.keep_classes=[3, 7]: 3 -> 0, 7 -> 1)."""
    classes = data_cfg.get("keep_classes")
    if classes is None:
        return pool
    classes = [int(c) for c in classes]
    where = f"data.keep_classes={classes}"
    if pool.task != "classification":
        raise ConfigError(f"{where}: data={data_cfg['name']} is regression data; it has no classes")
    missing = [c for c in classes if not bool((pool.y == c).any())]
    if missing:
        raise ConfigError(f"{where}: data={data_cfg['name']} has no class {missing[0]} "
                          f"(its labels: {', '.join(map(str, torch.unique(pool.y).tolist()))})")
    mask, y = relabel(pool.y, classes)
    kept = replace(pool, x=pool.x[mask], y=y)
    if getattr(pool, "y_test", None) is not None:
        test_mask, y_test = relabel(pool.y_test, classes)
        kept = replace(kept, x_test=pool.x_test[test_mask], y_test=y_test)
    return kept
