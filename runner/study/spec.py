"""A study file (studies/NAME.yaml) -> a frozen StudySpec, checked before anything runs.

A study says its claim and source, what was scaled down from the paper, the base overrides,
its arms (override lists, or sweeps), seeds, the measures, the criteria that decide the
verdict (written before the runs) and the figure. `quick` shrinks it for pipeline checks.
A study built on a comparison (`comparison:`, a comparison file's mapping) has instead one
arm per workload and contender, `WORKLOAD/CONTENDER`, whose seeds are the reruns of that
contender's chosen setting; its measure `tuned` is their workload's metric at the
protocol's epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from optlab import safe_yaml
from optlab.errors import ConfigError
from optlab.shipped import find_shipped, shipped_dir, shipped_names

STUDY_KEYS = {"claim", "source", "scaled_down", "base", "arms", "seeds", "quick", "measures", "criteria",
              "figure", "population", "notes", "comparison"}
MEASURE_KINDS = {"metric": ("column",), "to_target": ("column", "target"), "layer": ("stat",),  # kind -> keys it needs
                 "unit_spread": (), "sweep_best": (), "tuned": ()}
REDUCTIONS = ("first", "last", "mean", "ratio", "per_layer")
CRITERION_KINDS = {"welch", "equivalent", "every_seed", "noninferior"}
FIGURE_KINDS = {"bars", "curves", "layers", "trials", "comparison"}
QUICK_KEYS = {"seeds", "overrides", "sweep"}
DIRECTIONS = ("greater", "less")
OPS = ("<", ">")
PAIRINGS = ("ratio", "diff")
STUDIES_PLACEHOLDER = "{studies}"  # in an override: the built-in studies folder (its data/ files)


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...]
    sweep: dict | None = None   # a sweep file's settings (sampler, space, ...): one sweep per seed
    compared: tuple[str, str] | None = None  # (workload, contender) of the study's comparison


@dataclass(frozen=True)
class StudySpec:
    name: str
    claim: str
    source: str
    scaled_down: str
    base: tuple[str, ...]
    arms: tuple[Arm, ...]
    seeds: int
    measures: dict
    criteria: tuple[dict, ...]
    figure: dict
    quick: dict = field(default_factory=dict)
    population: int | None = None
    notes: str = ""
    path: str = ""
    comparison: object = None  # a compare.spec.ComparisonSpec, for a study built on one

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)


def builtin_studies_dir() -> Path:
    return shipped_dir("studies")


def study_names() -> list[str]:
    return shipped_names("studies")


def find_study(name: str) -> Path:
    """A study by name (built in) or by path to a YAML file."""
    return find_shipped(name, "studies", "study")


def load_study(name: str) -> StudySpec:
    path = find_study(name)
    raw = safe_yaml.load_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study file is a mapping of {', '.join(sorted(STUDY_KEYS))}")
    return spec_from_dict(path.stem, raw, str(path))


def spec_from_dict(name: str, raw: dict, path: str = "") -> StudySpec:
    unknown = sorted(set(raw) - STUDY_KEYS)
    if unknown:
        raise ConfigError(f"study {name}: unknown key {unknown[0]!r}; keys: {', '.join(sorted(STUDY_KEYS))}")
    compared = _comparison(name, raw)
    for key in ("claim", "source", "scaled_down", "measures", "criteria", "figure") + (() if compared else ("arms",)):
        if not raw.get(key):
            raise ConfigError(f"study {name}: {key} is missing")
    _check_shapes(name, raw)
    if compared:
        arms, seeds = compared_arms(compared), compared.protocol.rerun_seeds
    else:
        arms, seeds = tuple(_arm(name, arm, body) for arm, body in raw["arms"].items()), raw.get("seeds", 5)
    population = raw.get("population")
    spec = StudySpec(name=name, claim=str(raw["claim"]).strip(), source=str(raw["source"]).strip(),
                     scaled_down=str(raw["scaled_down"]).strip(), base=tuple(_overrides(name, raw.get("base"))),
                     arms=arms, seeds=_positive(name, "seeds", seeds),
                     measures=_measures(raw["measures"], compared),
                     criteria=tuple(raw["criteria"]), figure=dict(raw["figure"]), quick=dict(raw.get("quick") or {}),
                     population=None if population is None else _positive(name, "population", population),
                     notes=str(raw.get("notes") or "").strip(), path=path, comparison=compared)
    check(spec)
    return spec


def _comparison(name: str, raw: dict):
    """The comparison a study is built on (None for others); it alone defines the arms and seeds."""
    if "comparison" not in raw:
        return None
    from optlab.compare.spec import spec_from_dict as comparison_from_dict

    clash = sorted({"arms", "seeds", "base", "quick"} & set(raw))
    if clash:
        raise ConfigError(f"study {name}: {clash[0]} comes from the comparison in a study built on one; remove it")
    return comparison_from_dict(name, raw["comparison"])


def compared_arms(comparison) -> tuple[Arm, ...]:
    """One arm per workload and contender: WORKLOAD/CONTENDER."""
    return tuple(Arm(f"{w.name}/{c.name}", (), compared=(w.name, c.name))
                 for w in comparison.workloads for c in comparison.contenders)


def _measures(raw: dict, comparison) -> dict:
    """The measures; a `tuned` one learns each arm's column, direction and epoch from the comparison."""
    measures = dict(raw)
    for name, m in measures.items():
        if isinstance(m, dict) and m.get("kind") == "tuned":
            if comparison is None:
                raise ConfigError(f"measure {name}: tuned measures a study built on a comparison (comparison:)")
            columns = {f"{w.name}/{c.name}": [w.metric, w.maximize]
                       for w in comparison.workloads for c in comparison.contenders}
            measures[name] = {**m, "columns": columns, "at": comparison.protocol.at}
    return measures


def _check_shapes(name: str, raw: dict) -> None:
    """The containers the checks below walk through, so a wrong one is a line, not a traceback."""
    for key in ("arms", "measures", "figure", "quick"):
        if not isinstance(raw.get(key) or {}, dict):
            raise ConfigError(f"study {name}: {key} must be a mapping")
    if not all(isinstance(m, dict) for m in raw["measures"].values()):
        raise ConfigError(f"study {name}: measures must be a mapping of names to mappings like {{kind: metric, ...}}")
    if not isinstance(raw["criteria"], list) or not all(isinstance(c, dict) for c in raw["criteria"]):
        raise ConfigError(f"study {name}: criteria must be a list of mappings like {{kind: welch, ...}}")


def _arm(study: str, name: str, body: Any) -> Arm:
    if isinstance(body, dict):
        if "sweep" not in body:
            raise ConfigError(f"study {study}: arm {name}: a mapping arm needs `sweep` (else give a list of overrides)")
        if not isinstance(body["sweep"], dict):
            raise ConfigError(f"study {study}: arm {name}: sweep must be a mapping of sweep settings")
        return Arm(name, tuple(_overrides(study, body.get("overrides"))), dict(body["sweep"]))
    return Arm(name, tuple(_overrides(study, body)))


def _overrides(study: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"study {study}: overrides must be a list of strings like optimizer.lr=0.1")
    return [v.replace(STUDIES_PLACEHOLDER, str(builtin_studies_dir())) for v in value]


def _positive(study: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"study {study}: {key} must be an integer >= 1, not {value!r}")
    return value


def check(spec: StudySpec) -> None:
    """Every measure, criterion and figure names things that exist."""
    arms = {a.name for a in spec.arms}
    for mname, m in spec.measures.items():
        _check_measure(f"study {spec.name}: measure {mname}", m)
    for c in spec.criteria:
        _check_criterion(spec, c, arms)
    unknown = sorted(set(spec.quick) - QUICK_KEYS)
    if unknown:
        raise ConfigError(f"study {spec.name}: quick: unknown key {unknown[0]!r}; keys: {', '.join(sorted(QUICK_KEYS))}")
    for panel in figure_panels(spec.figure):
        _check_panel(spec, panel)


def figure_panels(figure: dict) -> list[dict]:
    """The figure's panels, side by side: its `panels` list, or the figure itself as one panel."""
    panels = figure.get("panels")
    return list(panels) if isinstance(panels, list) and panels else [figure]


def _check_panel(spec: StudySpec, panel: Any) -> None:
    where = f"study {spec.name}: figure"
    if not isinstance(panel, dict) or panel.get("kind") not in FIGURE_KINDS:
        raise ConfigError(f"{where} kind must be one of {', '.join(sorted(FIGURE_KINDS))}")
    if "measure" in panel and panel["measure"] not in spec.measures:
        raise ConfigError(f"{where} measure must be one of {', '.join(spec.measures)}")
    if panel["kind"] == "trials" and not (panel.get("x") and any(a.sweep for a in spec.arms)):
        raise ConfigError(f"{where}: a trials panel needs x (a searched key) and a sweep arm")
    if panel["kind"] == "comparison" and spec.comparison is None:
        raise ConfigError(f"{where} kind comparison needs the study to be built on one (comparison:)")


def _check_measure(where: str, m: dict) -> None:
    kind = m.get("kind")
    if kind not in MEASURE_KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(sorted(MEASURE_KINDS))}")
    missing = [key for key in MEASURE_KINDS[kind] if key not in m]
    if missing:
        raise ConfigError(f"{where}: {kind} needs {' and '.join(missing)}")
    at = m.get("at", "final")
    if kind == "metric" and at not in ("final", "best") and not isinstance(at, int):
        raise ConfigError(f"{where}: at must be final, best or an epoch number, not {at!r}")
    if kind == "layer" and m.get("reduce", "ratio") not in REDUCTIONS:
        raise ConfigError(f"{where}: reduce {m['reduce']!r}: choose from {', '.join(REDUCTIONS)}")


def _check_criterion(spec: StudySpec, c: dict, arms: set[str]) -> None:
    where = f"study {spec.name}: criterion {c}"
    if c.get("kind") not in CRITERION_KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(sorted(CRITERION_KINDS))}")
    if c.get("measure") not in spec.measures:
        raise ConfigError(f"{where}: measure must be one of {', '.join(spec.measures)}")
    named = [c[k] for k in ("a", "b", "arm") if k in c]
    if not named or any(a not in arms for a in named):
        raise ConfigError(f"{where}: arms must be among {', '.join(sorted(arms))}")
    if c["kind"] == "every_seed":
        _check_every_seed(where, c)
    elif not ("a" in c and "b" in c):
        raise ConfigError(f"{where}: {c['kind']} compares two arms: give a and b")
    if c["kind"] in ("welch", "noninferior") and c.get("direction") not in DIRECTIONS:
        raise ConfigError(f"{where}: direction must be greater or less")
    if "margin" in c and not _is_number(c["margin"]):
        raise ConfigError(f"{where}: margin must be a number")
    if c["kind"] in ("equivalent", "noninferior") and not c.get("margin", 0) > 0:
        raise ConfigError(f"{where}: {c['kind']} needs a margin > 0")


def _check_every_seed(where: str, c: dict) -> None:
    if ("arm" in c) == ("a" in c) or ("a" in c) != ("b" in c):
        raise ConfigError(f"{where}: every_seed takes one arm, or a and b (their values paired seed by seed)")
    if c.get("of", "ratio") not in PAIRINGS:
        raise ConfigError(f"{where}: of must be ratio or diff")
    if c.get("op") not in OPS or not _is_number(c.get("threshold")):
        raise ConfigError(f"{where}: every_seed needs op '<' or '>' and a threshold")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
