"""Sampling the space, composing probe samples to check it, and coarse-to-fine refinement."""
from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

from optlab.errors import ConfigError
from optlab.sweep.spec import Param, SweepSpec, override_key


def is_active(param: Param, assignment: dict) -> bool:
    return all(name in assignment and assignment[name] in values for name, values in param.when)


def suggest(trial, space: tuple[Param, ...]) -> dict:
    """Sample the space for this Optuna trial (conditions are followed): name -> value."""
    assignment: dict[str, Any] = {}
    for p in space:
        if not is_active(p, assignment):
            continue
        if p.kind == "categorical":
            assignment[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            assignment[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            assignment[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return assignment


def to_overrides(space: tuple[Param, ...], assignment: dict) -> list[str]:
    """Hydra overrides for sampled values (space order; inactive parameters left out)."""
    return [f"{p.key}={format_value(assignment[p.name])}" for p in space if p.name in assignment]


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def grid_space(spec: SweepSpec) -> dict[str, list]:
    return {p.name: p.values_for_grid(spec.grid_points) for p in spec.space}


def check_probes(spec: SweepSpec) -> None:
    """Compose base + probe samples so that bad keys, values out of range and impossible
    conditions fail now with one line (see probe_assignments); a categorical value's other
    choices of the kind a probe composed are checked against its key's spec alone. Hydra
    composes each distinct set of group choices once; a probe that only changes values is
    checked on a copy."""
    from optlab.config.compose import shared_composer

    compose = shared_composer(spec.config_dir)
    _check_group_choices(spec)
    checked: set[tuple[str, str]] = set()
    for assignment in probe_assignments(spec.space, _deep_groups(spec)):
        overrides = [*spec.base, *to_overrides(spec.space, assignment)]
        try:
            cfg = compose(overrides)
        except ConfigError as exc:
            raise ConfigError(f"sweep {spec.study}: {exc} (composing {' '.join(overrides)})") from None
        _check_choices_like_the_probe(spec, assignment, cfg, checked)


def choice_kind(param: Param, value: Any) -> str | None:
    """The kind of a categorical choice of a config value (a dotted key) for which one composed
    probe speaks: its type, a plain word being one kind; None for a choice composed alone (a
    list, a string Hydra would read as something else, any choice of a `name` or `_target_`,
    which pick an option's spec or code)."""
    if "." not in param.key or param.key.rsplit(".", 1)[-1] in ("name", "_target_"):
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return type(value).__name__
    if isinstance(value, str) and _PLAIN_WORD.fullmatch(value) and value.lower() not in _RETYPED_WORDS:
        return "word"
    return None


_PLAIN_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_RETYPED_WORDS = {"true", "false", "null", "inf", "nan"}  # words Hydra's grammar reads as other types


def _check_choices_like_the_probe(spec: SweepSpec, assignment: dict, cfg, checked: set) -> None:
    """Each parameter whose value in this probe is the first choice of its kind: the choices of
    that kind checked against the key's spec in this composed config, once per kind."""
    from optlab.config.validate import key_spec

    for p in spec.space:
        kind = choice_kind(p, assignment.get(p.name)) if p.kind == "categorical" and p.name in assignment else None
        if kind is None or (p.name, kind) in checked:
            continue
        checked.add((p.name, kind))
        key = key_spec(cfg, p.key)
        for choice in (c for c in p.choices if key is not None and choice_kind(p, c) == kind):
            complaint = key.complaint(choice)
            if complaint:
                raise ConfigError(f"sweep {spec.study}: space '{p.name}': {p.key}={format_value(choice)}: {complaint}")


def _check_group_choices(spec: SweepSpec) -> None:
    from optlab.config.compose import GROUPS, group_options

    for p in spec.space:
        if p.kind == "categorical" and p.key in GROUPS:
            options = group_options(p.key, spec.config_dir)
            for choice in p.choices:
                if str(choice) not in options:
                    raise ConfigError(f"space '{p.name}': {p.key}={choice}: unknown {p.key}; "
                                      f"choose from: {', '.join(options)}")


def _deep_groups(spec: SweepSpec) -> set[str]:
    """Config groups whose every option must be composed: those the base or the space
    also sets keys inside (e.g. optimizer.momentum beside optimizer: [...])."""
    keys = [override_key(o) for o in spec.base] + [p.key for p in spec.space]
    return {k.split(".")[0] for k in keys if "." in k}


def probe_assignments(space: tuple[Param, ...], deep: set[str] = frozenset()) -> list[dict]:
    """Assignments to compose, conditions satisfied, deduplicated: every choice of a
    categorical parameter (its first only for a group nothing else reaches into; of a config
    value's, the first of each kind: see choice_kind), and each numeric parameter at its low
    (others low) and at its high (others high)."""
    wanted = []
    for target in space:
        if target.kind == "categorical":
            choices = target.choices if ("." in target.key or target.key in deep) else target.choices[:1]
            wanted += [(target, c, "low") for c in _one_per_kind(target, choices)]
        else:
            wanted += [(target, target.low, "low"), (target, target.high, "high")]
    probes, seen = [], set()
    for target, value, fill in wanted:
        assignment = _probe(space, target, value, fill)
        marker = tuple(sorted((k, repr(v)) for k, v in assignment.items()))
        if marker not in seen:
            seen.add(marker)
            probes.append(assignment)
    return probes


def _one_per_kind(param: Param, choices) -> list:
    """The choices a probe composes: the first of each kind (see choice_kind), and every
    choice that is composed alone."""
    kept, kinds = [], set()
    for choice in choices:
        kind = choice_kind(param, choice)
        if kind is None or kind not in kinds:
            kept.append(choice)
            kinds.add(kind)
    return kept


def _probe(space: tuple[Param, ...], target: Param, value: Any, fill: str) -> dict:
    needed = _requirements(space, target)
    needed[target.name] = (value,)
    assignment: dict[str, Any] = {}
    for p in space:
        if not is_active(p, assignment):
            continue
        ends = p.extremes()
        allowed = ends[:1] if fill == "low" or p.kind == "categorical" else ends[-1:]
        if p.name in needed:
            pool = ends if p.kind == "categorical" else list(needed[p.name])
            allowed = [v for v in pool if v in needed[p.name] and (p.kind == "categorical" or p.low <= v <= p.high)]
        if not allowed:
            raise ConfigError(f"space '{p.name}': none of {list(needed[p.name])} is a possible value")
        assignment[p.name] = allowed[0]
    if target.name not in assignment:
        raise ConfigError(f"space '{target.name}': its `when` condition can never hold")
    return assignment


def _requirements(space: tuple[Param, ...], target: Param) -> dict[str, tuple]:
    by_name = {p.name: p for p in space}
    needed: dict[str, tuple] = {}
    pending = list(target.when)
    while pending:
        name, values = pending.pop()
        needed[name] = tuple(v for v in values if v in needed[name]) if name in needed else values
        pending.extend(by_name[name].when)
    return needed


def refine_space(space: tuple[Param, ...], best: list[dict]) -> tuple[Param, ...]:
    """Narrow numeric ranges around the best trials' assignments (log space for log
    parameters) and keep only the categorical choices they used."""
    return tuple(_refine_param(p, [a[p.name] for a in best if p.name in a]) for p in space)


def _refine_param(p: Param, values: list) -> Param:
    if not values:
        return p
    if p.kind == "categorical":
        return replace(p, choices=tuple(c for c in p.choices if c in values))
    to, back = (math.log, math.exp) if p.log else (float, float)
    lo, hi = to(min(values)), to(max(values))
    full = to(p.high) - to(p.low)
    pad = max(0.5 * (hi - lo), 0.1 * full)
    low, high = max(back(lo - pad), p.low), min(back(hi + pad), p.high)
    if p.kind == "int":
        low, high = int(math.floor(low)), int(math.ceil(high))
    else:
        low, high = float(f"{low:.4g}"), float(f"{high:.4g}")
        low, high = max(low, p.low), min(high, p.high)
    return replace(p, low=low, high=high, grid=())
