"""Where a sweep's workers run: the `launcher` options (conf/launcher/*.yaml), read into a frozen spec.

`local` runs the workers as processes of this command (--jobs); `slurm` submits them as one
Slurm job array (runner/sweep/slurm.py). A user's `--config-dir DIR` may hold
`DIR/launcher/NAME.yaml` (a new launcher, or one that overrides a built-in of that name), and
`launcher.KEY=VALUE` among the overrides changes one key for this command.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from optlab import safe_yaml
from optlab.errors import ConfigError

KINDS = ("local", "slurm")


@dataclass(frozen=True)
class Launcher:
    """One launcher option; the Slurm keys are what each array task asks Slurm for."""

    name: str = "local"
    kind: str = "local"                   # local | slurm
    partition: str | None = None          # None: the cluster's default partition
    account: str | None = None
    qos: str | None = None
    time_min: int = 60                    # each task's time limit, in minutes
    gpus_per_worker: int = 0
    cpus_per_worker: int = 1
    mem_gb: float | None = None           # None: the partition's default
    array_parallelism: int | None = None  # tasks running at once (None: all of them)
    constraint: str | None = None
    setup: tuple[str, ...] = ()           # shell lines run before each worker (module load ...)
    additional_parameters: dict = field(default_factory=dict)  # any other sbatch option
    signal_delay_s: int = 120             # USR2 this long before the time limit: stop, checkpoint, requeue


KEYS = tuple(f.name for f in fields(Launcher))
DEFAULT = Launcher()


def launcher_dirs(config_dir: str | None) -> list[Path]:
    """The user's launcher folder first (its files win), then the built-in one."""
    from optlab.config.compose import builtin_config_dir

    dirs = [Path(config_dir).expanduser() / "launcher"] if config_dir else []
    return dirs + [builtin_config_dir() / "launcher"]


def known_launchers(config_dir: str | None) -> list[str]:
    return sorted({p.stem for d in launcher_dirs(config_dir) if d.is_dir() for p in d.glob("*.yaml")})


def load_launcher(name: str, config_dir: str | None = None, overrides: list[str] = ()) -> Launcher:
    """conf/launcher/NAME.yaml (or the user's), with `launcher.KEY=VALUE` overrides applied."""
    path = next((d / f"{name}.yaml" for d in launcher_dirs(config_dir) if (d / f"{name}.yaml").is_file()), None)
    if path is None:
        raise ConfigError(f"--launcher {name}: unknown; choose from: {', '.join(known_launchers(config_dir))}")
    raw = safe_yaml.load_file(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a launcher file is a mapping of {', '.join(KEYS)}")
    raw = {"name": name, **raw}
    for text in overrides:
        key, value = split_override(text)
        raw[key] = value
    return launcher_from_dict(raw, str(path))


def split_override(text: str) -> tuple[str, Any]:
    """'launcher.KEY=VALUE' -> (KEY, VALUE read as YAML)."""
    key, sep, value = text.partition("=")
    key = key.removeprefix("+").removeprefix("launcher.")
    if not sep:
        raise ConfigError(f"{text}: give launcher.KEY=VALUE")
    try:
        return key, yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        return key, value


def launcher_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """The overrides split into (launcher.* ones, the rest: the training config's)."""
    ours = [o for o in overrides if o.removeprefix("+").startswith("launcher.")]
    return ours, [o for o in overrides if o not in ours]


def launcher_from_dict(raw: dict, where: str) -> Launcher:
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"launcher.{unknown[0]} ({where}): unknown key; valid keys: {', '.join(KEYS)}")
    kind = raw.get("kind", "local")
    if kind not in KINDS:
        raise ConfigError(f"launcher.kind={kind} ({where}): choose from: {', '.join(KINDS)}")
    setup = raw.get("setup") or ()
    setup = (setup,) if isinstance(setup, str) else setup
    extra = raw.get("additional_parameters") or {}
    if not isinstance(setup, (list, tuple)) or not all(isinstance(line, str) for line in setup):
        raise ConfigError(f"launcher.setup ({where}): a list of shell lines")
    if not isinstance(extra, dict):
        raise ConfigError(f"launcher.additional_parameters ({where}): a mapping of sbatch option -> value")
    return Launcher(
        name=str(raw["name"]), kind=kind, partition=_text(raw, "partition"), account=_text(raw, "account"),
        qos=_text(raw, "qos"), time_min=_count(raw, "time_min", 1),
        gpus_per_worker=_count(raw, "gpus_per_worker", 0), cpus_per_worker=_count(raw, "cpus_per_worker", 1),
        mem_gb=_memory(raw.get("mem_gb")), array_parallelism=_count(raw, "array_parallelism", 1),
        constraint=_text(raw, "constraint"), setup=tuple(setup), additional_parameters=dict(extra),
        signal_delay_s=_count(raw, "signal_delay_s", 0),
    )


def _text(raw: dict, key: str) -> str | None:
    value = raw.get(key)
    return None if value is None else str(value)


def _count(raw: dict, key: str, minimum: int) -> int | None:
    value = raw.get(key, getattr(DEFAULT, key))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"launcher.{key}={value}: must be an integer >= {minimum}")
    return value


def _memory(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"launcher.mem_gb={value}: must be a number of gigabytes > 0")
    return float(value)
