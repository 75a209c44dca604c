"""Sweep files -> a SweepSpec: the search space and the settings, parsed into a frozen spec.

spec_from_dict parses (types, ranges of the space's parameters); check_settings checks the
settings' choices. build.py is the one place that makes the spec a sweep starts with (and
validates it, once); nothing edits a spec afterwards."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from optlab import safe_yaml
from optlab.errors import ConfigError, choose_from
from optlab.shipped import find_shipped

SAMPLERS = ("random", "grid", "tpe", "gp", "cmaes", "qmc")


PRUNERS = ("none", "median", "successive_halving", "hyperband")


METRICS = {"val_acc": "maximize", "val_loss": "minimize", "train_acc": "maximize", "train_loss": "minimize"}


AT_CHOICES = ("best", "final")  # which epoch stands for a run: its best in the sweep's direction, or its last


def split_of(column: str) -> str:
    """The data split a metric is measured on, from its name ('' when it names none)."""
    for prefix, split in (("val_", "validation"), ("train_", "training"), ("test_", "test")):
        if column.removeprefix("best_").removeprefix("final_").startswith(prefix):
            return split
    return ""


def metric_label(metric: str, at: str | None) -> str:
    """What a number is, in the one wording that tables, captions, plot axes and log lines
    use: 'val_acc (validation, best epoch)'; `at` None for a number of no epoch."""
    where = ", ".join(p for p in (split_of(metric), f"{at} epoch" if at else "") if p)
    return f"{metric} ({where})" if where else metric


PARAM_TYPES = ("float", "int", "categorical")


PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "key", "when", "grid"}


SPEC_KEYS = {"metric", "at", "direction", "sampler", "pruner", "trials", "timeout", "seeds", "base",
             "space", "seed", "grid_points", "study", "storage", "jobs", "per_gpu", "population", "scheduler", "pbt"}


SCHEDULERS = ("none", "pbt")  # none: each trial keeps its values for its whole run; pbt: Population Based Training


@dataclass(frozen=True)
class PbtSettings:
    """`pbt:` of a sweep with `scheduler: pbt` (sweep/pbt.py). The defaults are Ray Tune's
    PopulationBasedTraining's, but for the interval, which Ray counts in seconds of training."""

    interval: int = 4                    # epochs between exploit rounds (Ray: perturbation_interval)
    quantile: float = 0.25               # the bottom and top fractions of the ranking (Ray: quantile_fraction)
    perturb: tuple[float, ...] = (1.2, 0.8)  # a perturbed value is multiplied by one of these (Ray: perturbation_factors)
    resample: float = 0.25               # the chance a value is drawn anew from the space (Ray: resample_probability)


PBT_KEYS = ("interval", "quantile", "perturb", "resample")


GRID_POINTS = 4


@dataclass(frozen=True)
class Param:
    """One dimension of the space: sampled under `name`, written to config key `key`."""

    name: str
    kind: str  # float | int | categorical
    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    when: tuple = ()  # ((param name, (allowed values...)), ...)
    grid: tuple = ()

    def values_for_grid(self, points: int) -> list:
        if self.kind == "categorical":
            return list(self.choices)
        if self.grid:
            return list(self.grid)
        if self.kind == "int" and self.step is None and self.high - self.low + 1 <= points:
            return list(range(int(self.low), int(self.high) + 1))
        return spread(self.low, self.high, points, self.log, self.kind == "int")

    def extremes(self) -> list:
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def raw(self) -> dict:
        """The YAML form (what sweep.json records and --refine reads back)."""
        out: dict[str, Any] = {"type": self.kind}
        if self.key != self.name:
            out["key"] = self.key
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
            if self.grid:
                out["grid"] = list(self.grid)
        if self.when:
            out["when"] = {name: list(values) for name, values in self.when}
        return out


@dataclass(frozen=True)
class SweepSpec:
    """A sweep's definition. Frozen, its sequences tuples: build.build_spec makes and checks
    it once, and a copy with another budget is made by study.settle_budget only."""

    study: str
    metric: str = "val_acc"
    at: str = "best"  # a trial's value: each seed's run at its best or its final epoch (AT_CHOICES)
    direction: str = "maximize"
    sampler: str = "tpe"
    pruner: str = "none"
    trials: int = 20
    timeout: float | None = None
    seeds: int = 1
    base: tuple[str, ...] = ()
    space: tuple[Param, ...] = ()
    seed: int | None = None  # the sampler's seed; None: a fresh one per process
    grid_points: int = GRID_POINTS
    storage: str | None = None
    jobs: int | None = None
    per_gpu: int = 1
    population: int | None = None  # runs trained at once per worker as one population (None: solo)
    scheduler: str = "none"  # SCHEDULERS; pbt: the population is PBT's, its size `population`
    pbt: PbtSettings = PbtSettings()
    config_dir: str | None = None
    source: str | None = None
    refined_from: str | None = None
    source_text: str | None = None  # the sweep file as written (kept on the study)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("source_text")
        data["base"] = list(self.base)
        data["space"] = {p.name: p.raw() for p in self.space}
        return data


def spread(low: float, high: float, points: int, log: bool, integer: bool) -> list:
    """`points` values from low to high, evenly spaced (in log space when log)."""
    if points <= 1 or low == high:
        return [low]
    a, b = (math.log(low), math.log(high)) if log else (low, high)
    values = [a + (b - a) * i / (points - 1) for i in range(points)]
    values = [math.exp(v) for v in values] if log else values
    values = [round(v) for v in values] if integer else [float(f"{v:.4g}") for v in values]
    return sorted(set(values))


def find_sweep_file(name: str) -> Path:
    """A path, else a file of that name in the built-in sweeps/ folder (with or without
    .yaml), so `sweeps/lr_wd.yaml`, `lr_wd.yaml` and `lr_wd` work from any directory."""
    return find_shipped(name, "sweeps", "sweep file")


def read_sweep_file(path: Path) -> tuple[dict, str]:
    """The sweep file's mapping (its study named after the file unless it says otherwise)
    and its text as written."""
    text = safe_yaml.read_file(path)
    raw = safe_yaml.load_text(text, path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping (metric, sampler, space, ...)")
    return {"study": Path(path).stem, **raw}, text


def spec_from_dict(raw: dict, source: str | None = None, source_text: str | None = None) -> SweepSpec:
    """Parse a sweep's mapping: types, bounds and the space. The settings' choices (sampler,
    pruner, ...) are checked by check_settings."""
    unknown = set(raw) - SPEC_KEYS - {"config_dir", "source", "refined_from"}
    if unknown:
        bad = sorted(unknown)[0]
        raise ConfigError(f"sweep file {source}: unknown key '{bad}'; {choose_from(bad, sorted(SPEC_KEYS))}")
    metric = str(raw.get("metric", "val_acc"))
    if metric not in METRICS:
        raise ConfigError(f"metric '{metric}': {choose_from(metric, METRICS)}")
    population, pbt = population_size(raw.get("population")), raw.get("scheduler") == "pbt"
    if pbt:  # one trial per member, in one process
        raw = {"trials": population or 20, "jobs": 1, **{k: v for k, v in raw.items() if v is not None}}
    return SweepSpec(
        study=str(raw["study"]), metric=metric, at=str(raw.get("at", "best")),
        direction=str(raw.get("direction", METRICS[metric])),
        sampler=str(raw.get("sampler", "tpe")), pruner=str(raw.get("pruner", "none")),
        trials=_int(raw.get("trials", 20), "trials", 1),
        timeout=None if raw.get("timeout") is None else float(raw["timeout"]),
        seeds=_int(raw.get("seeds", 1), "seeds", 1),
        base=base_overrides(raw.get("base")),
        space=parse_space(raw.get("space") or {}),
        seed=None if raw.get("seed") is None else _int(raw["seed"], "seed", 0),
        grid_points=_int(raw.get("grid_points", GRID_POINTS), "grid_points", 1),
        storage=raw.get("storage"), jobs=None if raw.get("jobs") is None else _int(raw["jobs"], "jobs", 1),
        per_gpu=_int(raw.get("per_gpu", 1), "per_gpu", 1),
        population=population,
        scheduler=str(raw.get("scheduler", "none")), pbt=pbt_settings(raw.get("pbt")),
        config_dir=raw.get("config_dir"), source=raw.get("source", source),
        refined_from=raw.get("refined_from"), source_text=source_text,
    )


def population_size(value: Any) -> int | str | None:
    """`population: K` (an integer >= 1) or `auto` (K measured when the sweep starts:
    optlab.training.grouping.auto_size)."""
    from optlab.training.grouping import population_setting

    return population_setting(value, "population:")


def pbt_settings(raw: Any) -> PbtSettings:
    """`pbt: {interval, quantile, perturb, resample}` (each optional) -> PbtSettings."""
    if raw is None:
        return PbtSettings()
    if not isinstance(raw, dict):
        raise ConfigError("pbt: a mapping, e.g. {interval: 2, quantile: 0.25, perturb: [0.8, 1.25], resample: 0.25}")
    unknown = sorted(set(raw) - set(PBT_KEYS))
    if unknown:
        raise ConfigError(f"pbt: unknown key '{unknown[0]}'; {choose_from(unknown[0], PBT_KEYS)}")
    default = PbtSettings()
    interval = _int(raw.get("interval", default.interval), "pbt.interval", 1)
    quantile, resample = raw.get("quantile", default.quantile), raw.get("resample", default.resample)
    perturb = raw.get("perturb", list(default.perturb))
    if not _number(quantile) or not 0 < quantile <= 0.5:
        raise ConfigError(f"pbt.quantile={quantile}: must be a number in (0, 0.5] (the bottom and top fractions)")
    if not _number(resample) or not 0 <= resample <= 1:
        raise ConfigError(f"pbt.resample={resample}: must be a probability in [0, 1]")
    if not isinstance(perturb, list) or not perturb or not all(_number(f) and f > 0 for f in perturb):
        raise ConfigError(f"pbt.perturb={perturb}: must be a list of factors > 0, e.g. [0.8, 1.25]")
    return PbtSettings(interval, float(quantile), tuple(float(f) for f in perturb), float(resample))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def override_key(override: str) -> str:
    """The key (or group) an override sets: `+optimizer.lr=0.1` -> optimizer.lr."""
    return override.split("=", 1)[0].lstrip("+~")


def base_overrides(raw_base: Any) -> tuple[str, ...]:
    return tuple(str(o) for o in (raw_base or []))


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value}: must be an integer >= {minimum}")
    return value


def check_settings(spec: SweepSpec) -> None:
    """The settings' choices; build.validate runs this and the space's probes once per start."""
    check_study_name(spec.study)
    if spec.direction not in ("maximize", "minimize"):
        raise ConfigError(f"direction '{spec.direction}': choose from: maximize, minimize")
    if spec.at not in AT_CHOICES:
        raise ConfigError(f"at '{spec.at}': {choose_from(spec.at, AT_CHOICES)} (which epoch of each run is its value)")
    if spec.sampler not in SAMPLERS:
        raise ConfigError(f"sampler '{spec.sampler}': unknown; {choose_from(spec.sampler, SAMPLERS)}")
    if spec.pruner not in PRUNERS:
        raise ConfigError(f"pruner '{spec.pruner}': unknown; {choose_from(spec.pruner, PRUNERS)}")
    if spec.scheduler not in SCHEDULERS:
        raise ConfigError(f"scheduler '{spec.scheduler}': unknown; {choose_from(spec.scheduler, SCHEDULERS)}")
    if spec.timeout is not None and spec.timeout <= 0:
        raise ConfigError(f"timeout={spec.timeout}: must be > 0 seconds")
    if not spec.space:
        raise ConfigError("the sweep's space is empty: add at least one parameter under `space:`")


def check_study_name(name: str) -> None:
    """A study's name is its folder's, trainer.out_dir/sweeps/<study>: one folder name, so the
    study, its trials.csv and its runs stay under the outputs root."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not name or "/" in name or "\\" in name or "\0" in name or name in (".", "..") or len(name) > 200:
        closest = "_".join(parts).replace("\0", "")[:200] or "my_study"
        raise ConfigError(f"study {name!r}: a study name is one folder name under trainer.out_dir/sweeps "
                          f"(no '/' or '\\', not '.' or '..', at most 200 characters); e.g. study: {closest}")


def parse_space(raw: dict) -> tuple[Param, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("space: a mapping of parameter name -> {type, low, high, ...} or a list of choices")
    space: list[Param] = []
    for name, body in raw.items():
        space.append(parse_param(str(name), body, [p.name for p in space]))
    return tuple(space)


def parse_param(name: str, body: Any, earlier: list[str]) -> Param:
    if isinstance(body, list):
        body = {"type": "categorical", "choices": body}
    if not isinstance(body, dict):
        raise ConfigError(f"space '{name}': give {{type: float|int|categorical, ...}} or a list of choices")
    where = f"space '{name}'"
    unknown = set(body) - PARAM_KEYS
    if unknown:
        bad = sorted(unknown)[0]
        raise ConfigError(f"{where}: unknown field '{bad}'; {choose_from(bad, sorted(PARAM_KEYS))}")
    kind = str(body.get("type", "categorical" if "choices" in body else "float"))
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}: unknown type '{kind}'; {choose_from(kind, PARAM_TYPES)}")
    when = _parse_when(where, body.get("when"), earlier)
    key = str(body.get("key", name))
    if kind == "categorical":
        return Param(name, kind, key, choices=_choices(where, body.get("choices")), when=when)
    return _numeric(where, name, kind, key, body, when)


def _choices(where: str, choices: Any) -> tuple:
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: choices must be a non-empty list")
    for c in choices:
        if not (c is None or isinstance(c, (bool, int, float, str))):
            raise ConfigError(f"{where}: choice {c!r} must be a number, string, boolean or null")
    return tuple(choices)


def _numeric(where: str, name: str, kind: str, key: str, body: dict, when: tuple) -> Param:
    if "low" not in body or "high" not in body:
        raise ConfigError(f"{where}: a {kind} parameter needs low and high")
    number = int if kind == "int" else float
    try:
        low, high = number(body["low"]), number(body["high"])
        step = None if body.get("step") is None else number(body["step"])
        grid = tuple(number(v) for v in body.get("grid") or ())
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: low, high, step and grid must be {kind} numbers") from None
    log = bool(body.get("log", False))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{where}: low and high must be finite")
    if low > high:
        raise ConfigError(f"{where}: low ({low}) > high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-scale parameter needs low > 0 (got low={low})")
    if log and step is not None:
        raise ConfigError(f"{where}: log and step cannot be combined")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: step must be > 0 (got {step})")
    if any(not low <= v <= high for v in grid):
        raise ConfigError(f"{where}: grid values must lie in [low, high]")
    return Param(name, kind, key, low=low, high=high, log=log, step=step, when=when, grid=grid)


def _parse_when(where: str, when: Any, earlier: list[str]) -> tuple:
    if when is None:
        return ()
    if not isinstance(when, dict) or not when:
        raise ConfigError(f"{where}: when must map earlier parameters to values, e.g. {{optimizer: momentum}}")
    out = []
    for name, values in when.items():
        if name not in earlier:
            raise ConfigError(f"{where}: when refers to '{name}', which is not an earlier parameter of the space")
        out.append((str(name), tuple(values) if isinstance(values, list) else (values,)))
    return tuple(out)
