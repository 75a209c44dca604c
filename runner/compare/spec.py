"""A comparison file (comparisons/NAME.yaml) -> a frozen ComparisonSpec, checked before anything runs.

A comparison names its workloads (base overrides, a validation metric, a target or `auto`, a
budget in epochs, the margin its pairwise verdicts use), its contenders (overrides and a
search space each) and one protocol for all of them: AlgoPerf's external tuning (`tuning:
{studies: S, trials: T, sampler: qmc}`) or Schmidt et al.'s `tuning: defaults`, the rerun
seeds of each contender's chosen setting (DeepOBS), the epoch the reruns are read at, and the
profile's largest ratio and the share of the budget an auto target is set from. Budget parity is built in: every contender of a workload gets the
same studies, trials and epochs, and a contender may not set what the protocol or the
workload owns (epochs, seeds, data). `quick` shrinks it all for pipeline checks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from optlab import safe_yaml
from optlab.errors import ConfigError, choose_from
from optlab.shipped import find_shipped, shipped_names

KEYS = {"description", "workloads", "contenders", "protocol", "quick"}
WORKLOAD_KEYS = {"base", "metric", "target", "epochs", "margin"}
CONTENDER_KEYS = {"overrides", "space", "sampler"}
PROTOCOL_KEYS = {"tuning", "rerun_seeds", "at", "tau_max", "bootstrap", "target_share"}
TUNING_KEYS = {"studies", "trials", "sampler"}
QUICK_KEYS = {"studies", "trials", "rerun_seeds", "epochs", "overrides", "workloads", "contenders"}
METRICS = {"val_acc": "maximize", "val_loss": "minimize"}  # a validation target, as AlgoPerf's
AT = ("final", "best")
DEFAULTS = "defaults"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
OWNED = {"trainer.epochs": "the workload's epochs", "trainer.seed": "the protocol's seeds",
         "trainer.out_dir": "the comparison's folder", "trainer.name": "the comparison's run names",
         "data": "the workload"}  # keys a contender may not set, and who owns them


@dataclass(frozen=True)
class Workload:
    name: str
    base: tuple[str, ...]
    metric: str
    target: float | None   # None: auto, set from the best contender's tuning result
    epochs: int
    margin: float          # the smallest difference of `metric` that matters (pairwise verdicts)

    @property
    def maximize(self) -> bool:
        return METRICS[self.metric] == "maximize"


@dataclass(frozen=True)
class Contender:
    name: str
    overrides: tuple[str, ...]
    space: dict                 # a sweep file's `space` (empty under `tuning: defaults`)
    sampler: str | None = None  # over the protocol's (e.g. grid over a categorical)


@dataclass(frozen=True)
class Protocol:
    tuning: str          # a sweep sampler (qmc, random, ...) or `defaults`
    studies: int
    trials: int          # per study (1 under defaults)
    rerun_seeds: int
    at: str = "final"    # the epoch whose metric the reruns report and the verdicts compare
    tau_max: float = 4.0
    bootstrap: int = 1000
    target_share: float = 0.5  # `target: auto` is set from this share of each workload's epochs


@dataclass(frozen=True)
class ComparisonSpec:
    name: str
    description: str
    workloads: tuple[Workload, ...]
    contenders: tuple[Contender, ...]
    protocol: Protocol
    quick: dict = field(default_factory=dict)
    path: str = ""

    def workload(self, name: str) -> Workload:
        return next(w for w in self.workloads if w.name == name)

    def contender(self, name: str) -> Contender:
        return next(c for c in self.contenders if c.name == name)


def comparison_names() -> list[str]:
    return shipped_names("comparisons")


def find_comparison(name: str) -> Path:
    """A comparison by name (built in) or by path to a YAML file."""
    return find_shipped(name, "comparisons", "comparison")


def load_comparison(name: str) -> ComparisonSpec:
    path = find_comparison(name)
    raw = safe_yaml.load_file(path)
    return spec_from_dict(path.stem, raw, str(path))


def spec_from_dict(name: str, raw: Any, path: str = "") -> ComparisonSpec:
    where = f"comparison {name}"
    _mapping(where, raw, KEYS)
    for key in ("workloads", "contenders", "protocol"):
        if not raw.get(key):
            raise ConfigError(f"{where}: {key} is missing")
    protocol = _protocol(where, raw["protocol"])
    workloads = tuple(_workload(f"{where}: workload {w}", w, body) for w, body in _named(where, raw, "workloads"))
    contenders = tuple(_contender(f"{where}: contender {c}", c, body, protocol)
                       for c, body in _named(where, raw, "contenders"))
    quick = dict(raw.get("quick") or {})
    spec = ComparisonSpec(name, str(raw.get("description") or "").strip(), workloads, contenders, protocol,
                          quick, path)
    _check_quick(where, spec)
    return spec


def _mapping(where: str, raw: Any, keys: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping with keys {', '.join(sorted(keys))}")
    for key in raw:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r}; {choose_from(key, sorted(keys))}")
    return raw


def _named(where: str, raw: dict, key: str) -> list[tuple[str, Any]]:
    if not isinstance(raw[key], dict):
        raise ConfigError(f"{where}: {key} must be a mapping of names to settings")
    for name in raw[key]:
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"{where}: {key[:-1]} name {name!r}: lower-case letters, digits and _, "
                              f"starting with a letter")
    return list(raw[key].items())


def _protocol(where: str, raw: Any) -> Protocol:
    raw = _mapping(f"{where}: protocol", raw, PROTOCOL_KEYS)
    tuning = raw.get("tuning")
    if tuning == DEFAULTS:  # each study is one run at the contender's settings, with its own seed
        studies, trials, sampler = 5, 1, DEFAULTS
    else:
        tuning = _mapping(f"{where}: protocol tuning (or `tuning: defaults`)", tuning or {}, TUNING_KEYS)
        studies, trials = (_count(f"{where}: protocol tuning {k}", tuning.get(k, 5), 1) for k in ("studies", "trials"))
        sampler = _sampler(f"{where}: protocol tuning sampler", tuning.get("sampler", "qmc"))
    at = raw.get("at", "final")
    if at not in AT:
        raise ConfigError(f"{where}: protocol at {at!r}: {choose_from(at, AT)}")
    tau_max, share = raw.get("tau_max", 4.0), raw.get("target_share", 0.5)
    if not _is_number(tau_max) or tau_max <= 1:
        raise ConfigError(f"{where}: protocol tau_max {tau_max!r}: a number > 1")
    if not _is_number(share) or not 0 < share <= 1:
        raise ConfigError(f"{where}: protocol target_share {share!r}: a number in (0, 1]")
    return Protocol(sampler, studies, trials, _count(f"{where}: protocol rerun_seeds", raw.get("rerun_seeds", 5), 2),
                    at, float(tau_max), _count(f"{where}: protocol bootstrap", raw.get("bootstrap", 1000), 100),
                    float(share))


def _sampler(where: str, name: Any) -> str:
    from optlab.sweep.spec import SAMPLERS

    if name not in SAMPLERS:
        raise ConfigError(f"{where} {name!r}: {choose_from(name, SAMPLERS)}")
    return str(name)


def _workload(where: str, name: str, raw: Any) -> Workload:
    raw = _mapping(where, raw, WORKLOAD_KEYS)
    for key in ("base", "metric", "target", "epochs", "margin"):
        if key not in raw:
            raise ConfigError(f"{where}: {key} is missing")
    metric = raw["metric"]
    if metric not in METRICS:
        raise ConfigError(f"{where}: metric {metric!r}: {choose_from(metric, METRICS)}")
    target = raw["target"]
    if target != "auto" and not _is_number(target):
        raise ConfigError(f"{where}: target {target!r}: a number, or auto (from the best contender's result)")
    if not _is_number(raw["margin"]) or raw["margin"] < 0:
        raise ConfigError(f"{where}: margin {raw['margin']!r}: a number >= 0, in {metric}'s units")
    base = _overrides(where, "base", raw["base"])
    for key in (o.split("=", 1)[0].lstrip("+~") for o in base):
        if key.startswith("trainer.") and key in OWNED:
            raise ConfigError(f"{where}: base sets {key}, which is {OWNED[key]}'s to set (the epochs: the "
                              f"workload's `epochs` key)")
    return Workload(name, base, str(metric),
                    None if target == "auto" else float(target), _count(f"{where}: epochs", raw["epochs"], 1),
                    float(raw["margin"]))


def _contender(where: str, name: str, raw: Any, protocol: Protocol) -> Contender:
    raw = _mapping(where, raw or {}, CONTENDER_KEYS)
    overrides = _overrides(where, "overrides", raw.get("overrides"))
    space = raw.get("space") or {}
    if not isinstance(space, dict):
        raise ConfigError(f"{where}: space must be a mapping, as in a sweep file")
    if protocol.tuning == DEFAULTS and space:
        raise ConfigError(f"{where}: space given, but the protocol's tuning is defaults (no tuning): remove it")
    if protocol.tuning != DEFAULTS and not space:
        raise ConfigError(f"{where}: space is missing (the protocol tunes every contender)")
    keys = [str(body.get("key", name)) if isinstance(body, dict) else str(name) for name, body in space.items()]
    for key in [o.split("=", 1)[0].lstrip("+~") for o in overrides] + keys:
        _check_owned(where, key)
    sampler = raw.get("sampler")
    return Contender(name, overrides, dict(space), None if sampler is None else _sampler(f"{where}: sampler", sampler))


def _check_owned(where: str, key: str) -> None:
    for owned, owner in OWNED.items():
        if key == owned or key.startswith(owned + "."):
            raise ConfigError(f"{where}: {key} is {owner}'s to set (budget parity); a contender sets "
                              f"everything else")


def _overrides(where: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of overrides like optimizer.lr=0.1")
    return tuple(value)


def _check_quick(where: str, spec: ComparisonSpec) -> None:
    quick = _mapping(f"{where}: quick", spec.quick, QUICK_KEYS)
    named = {"workloads": [w.name for w in spec.workloads], "contenders": [c.name for c in spec.contenders]}
    for key, known in named.items():
        for name in quick.get(key) or []:
            if name not in known:
                raise ConfigError(f"{where}: quick {key}: {name!r}: {choose_from(name, known)}")


def shrunk(spec: ComparisonSpec) -> ComparisonSpec:
    """The spec --quick runs: fewer studies, trials, seeds and epochs, and the named subset."""
    q = spec.quick
    keep_w, keep_c = q.get("workloads"), q.get("contenders")
    extra = _overrides("quick", "overrides", q.get("overrides"))
    workloads = tuple(replace(w, base=w.base + extra, epochs=int(q.get("epochs", w.epochs)))
                      for w in spec.workloads if not keep_w or w.name in keep_w)
    p = spec.protocol
    trials = p.trials if p.tuning == DEFAULTS else int(q.get("trials", p.trials))
    protocol = replace(p, studies=int(q.get("studies", p.studies)), trials=trials,
                       rerun_seeds=int(q.get("rerun_seeds", p.rerun_seeds)))
    contenders = tuple(c for c in spec.contenders if not keep_c or c.name in keep_c)
    return replace(spec, workloads=workloads, contenders=contenders, protocol=protocol)


def _count(where: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {value!r}: an integer >= {minimum}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
