"""The catalogue of config options: every group's options with their one-line description
(the first comment line of the option's YAML) and their keys with defaults."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from runner.config.compose import GROUPS, group_options, search_dirs
from runner.errors import ConfigError


@dataclass(frozen=True)
class Option:
    group: str
    name: str
    description: str
    defaults: dict


def option_file(group: str, name: str, config_dir: str | None = None) -> Path:
    for root in search_dirs(config_dir):
        path = root / group / f"{name}.yaml"
        if path.is_file():
            return path
    raise ConfigError(f"{group}={name}: unknown {group}; choose from: {', '.join(group_options(group, config_dir))}")


def describe(path: Path) -> str:
    """The YAML's leading comment block, joined into one line."""
    lines = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        if not text.startswith("# @package"):
            lines.append(text.lstrip("#").strip())
    return " ".join(lines)


def options(group: str, config_dir: str | None = None) -> list[Option]:
    if group not in GROUPS:
        raise ConfigError(f"{group}: unknown group; choose from: {', '.join(GROUPS)}")
    found = []
    for name in group_options(group, config_dir):
        path = option_file(group, name, config_dir)
        values = yaml.safe_load(path.read_text()) or {}
        values.pop("name", None)
        found.append(Option(group, name, describe(path), values))
    return found


def flat_defaults(values: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += flat_defaults(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={value}")
    return out
