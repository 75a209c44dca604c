"""The catalogue of config options: every group's options (built-in and --config-dir files)
with their one-line description and their keys with defaults.

An option file's description is its leading comment when it has one (a user's file may say
what it is for), else the description of the spec the file names; the built-in files have
none, so `optlab list` shows the specs' own words. A file that names your own function
(`_target_`) shows it beside its description.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from optlab.config.compose import GROUPS, builtin_config_dir, flatten, group_options, option_file
from optlab.config.specs import KEYS_ONLY_GROUPS, option_specs
from optlab.errors import ConfigError, choose_from
from optlab.registry import Spec

__all__ = ["GROUPS", "Option", "flat_defaults", "key_rules", "missing_defaults", "option_keys", "options"]


@dataclass(frozen=True)
class Option:
    group: str
    name: str
    description: str
    defaults: dict  # the file's values, `name` aside


def leading_comment(path: Path) -> str:
    """The YAML's leading comment block (its `# @package` line aside), joined into one line."""
    lines = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        if not text.startswith("# @package"):
            lines.append(text.lstrip("#").strip())
    return " ".join(lines)


def file_values(group: str, path: Path) -> dict:
    """The file's values as they sit under the group: a `# @package augment.crop` header puts
    them under crop."""
    text = path.read_text()
    values = yaml.safe_load(text) or {}
    header = re.search(r"^#\s*@package\s+(\S+)", text, re.MULTILINE)
    package = header.group(1).replace("_group_", group) if header else group
    for part in reversed(package.removeprefix(group).lstrip(".").split(".")):
        if part:
            values = {part: values}
    return values


def file_specs(group: str, path: Path) -> list[tuple[str, Spec]]:
    """(entry, spec) of the options an option file configures: the spec its `name:` names."""
    try:
        return option_specs(group, file_values(group, path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def option_keys(group: str, name: str, config_dir: str | None = None) -> list[str]:
    """The dotted keys below the group that an option takes, in its spec's order (an augment
    entry's under the entry: crop.padding)."""
    path = option_file(group, name, config_dir)
    return [f"{entry}.{key}" if entry else key
            for entry, spec in file_specs(group, path) for key in spec.key_names()]


def key_rules(group: str, name: str, config_dir: str | None = None) -> dict[str, str]:
    """An option's keys as its file writes them (`bias.name`; an augment entry's without the
    entry) and what each takes beyond its type (Key.rule), from the specs the file names."""
    path = option_file(group, name, config_dir)
    return {key.name: key.rule() for _, spec in file_specs(group, path) for key in spec.keys}


def options(group: str, config_dir: str | None = None) -> list[Option]:
    if group not in GROUPS:
        raise ConfigError(f"{group}: unknown group; {choose_from(group, GROUPS)}")
    found = []
    for name in group_options(group, config_dir):
        path = option_file(group, name, config_dir)
        values = yaml.safe_load(path.read_text()) or {}
        values.pop("name", None)
        description = leading_comment(path) or " ".join(spec.description for _, spec in file_specs(group, path))
        if values.get("_target_"):  # your own component: which function it is
            description = f"{leading_comment(path) or f'Your own {group}'} ({values['_target_']})"
        found.append(Option(group, name, description, values))
    return found


def flat_defaults(values: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += flat_defaults(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={value}")
    return out


def missing_defaults(tree: dict) -> dict:
    """Dotted key -> default, for every key that the built-in files of a saved config's
    options declare and the config lacks. A run folder written before a key existed ran as
    that key's default says (a new key's default keeps the old behaviour), so a report reads
    it as the default. Read from the option files (they declare the specs' keys and
    defaults), so a report needs no torch; options without a built-in file are passed over."""
    found = {}
    for group in GROUPS:
        values = tree.get(group, {})
        if not isinstance(values, dict):
            continue
        for name in _chosen_files(group, values):
            try:
                declared = file_values(group, option_file(group, name))
            except (ConfigError, OSError, yaml.YAMLError):
                continue
            present = [key for key, _ in flatten(values)]
            found.update({f"{group}.{key}": default for key, default in flatten(declared)
                          if key != "name" and not any(p == key or p.startswith(f"{key}.") for p in present)})
    return found


def _chosen_files(group: str, values: dict) -> list[str]:
    """The option files a group's mapping came from: its `name:`, augment's entries, or for
    a keys-only group (trainer, regularize) the file the root config chooses."""
    if group == "augment":
        return [entry for entry, params in values.items() if isinstance(params, dict)]
    if group in KEYS_ONLY_GROUPS:
        return [_root_choices()[group]] if group in _root_choices() else []
    return [str(values["name"])] if "name" in values else []


@functools.cache
def _root_choices() -> dict:
    """{group: option} of conf/config.yaml's defaults list."""
    text = (builtin_config_dir() / "config.yaml").read_text()
    entries = (yaml.safe_load(text) or {}).get("defaults", [])
    return {k: str(v) for entry in entries if isinstance(entry, dict) for k, v in entry.items()}
