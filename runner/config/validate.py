"""Check a composed config against the specs of its chosen options.

Each group's mapping is checked against the spec its option names (config/specs.py): every
key is one of the spec's, every key whose default is not null is there, and each value has
its key's type, range and choices (runner/registry.py's Key says which). Messages are one
line naming the key as typed; an interpolation also shows what it resolved to.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from optlab.config.specs import GROUPS, augmentations, option_specs
from optlab.errors import ConfigError, choose_from
from optlab.registry import Key, Spec, as_typed, import_target

KeyTree = dict  # {part: Key | KeyTree}: a spec's keys nested at their dots


class UnknownKey(ConfigError):
    """A dotted key that the chosen option of its group does not define."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def validate(cfg: DictConfig, strict: bool = True, import_targets: bool = True) -> None:
    """Raise ConfigError (UnknownKey for a key no chosen option has) unless every group's
    mapping fits its options' specs. strict=False, for a run folder's saved config, checks
    the values of the keys the specs know and passes over unknown options, unknown keys
    and missing ones. import_targets=False leaves your own components' `_target_`s
    unimported (a config only printed runs none of their code)."""
    resolved = _resolved(cfg)
    for group, values in resolved.items():
        if group not in GROUPS:
            if strict:
                raise unknown_key(group)
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{_as_written(cfg, group, values)}: expected a mapping of {group}'s keys")
        for entry, spec in _specs(group, values, strict):
            path = f"{group}.{entry}" if entry else group
            checker = _Checker(cfg, path, spec, strict)
            checker.mapping(path, values[entry] if entry else values, key_tree(spec))
            if spec.target and strict and import_targets:  # your own component: its function imports and takes its arguments
                import_target(f"{path}._target_", values.get("_target_"), spec.target)


def _resolved(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # an interpolation that does not resolve
        raise ConfigError(one_line(str(exc))) from exc


def _specs(group: str, values: dict, strict: bool) -> list[tuple[str, Spec]]:
    if group == "augment":
        _check_augment_entries(values, strict)
    try:
        return option_specs(group, values)
    except ConfigError:
        if strict:
            raise
        return []


def _check_augment_entries(values: dict, strict: bool) -> None:
    """An entry no augmentation has is explained as an unknown key (with the options that have it)."""
    for entry, params in values.items():
        if strict and entry not in augmentations():
            raise unknown_key(f"augment.{entry}")
        if not isinstance(params, dict):
            raise ConfigError(f"augment.{entry}={as_typed(params)}: expected a mapping of augment.{entry}'s keys")


def key_tree(spec: Spec) -> KeyTree:
    """The spec's keys nested at their dots, with `name` first in named groups."""
    tree: KeyTree = {"name": Key("name", spec.name)} if spec.named else {}
    for key in spec.keys:
        *parents, leaf = key.name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = key
    return tree


class _Checker:
    """One option's mapping (at `base`) against its spec's key tree."""

    def __init__(self, cfg: DictConfig, base: str, spec: Spec, strict: bool):
        self.cfg, self.base, self.spec, self.strict = cfg, base, spec, strict

    def mapping(self, path: str, values: dict, tree: KeyTree) -> None:
        for sub, value in values.items():
            where, node = f"{path}.{sub}", tree.get(sub)
            if node is None:
                if self.strict and not self.spec.target:  # a custom option passes any other key on
                    raise unknown_key(where)
            elif isinstance(node, dict):
                if not isinstance(value, dict):
                    raise ConfigError(f"{_as_written(self.cfg, where, value)}: expected a mapping")
                self.mapping(where, value, node)
            else:
                complaint = node.complaint(value)
                if complaint:
                    raise ConfigError(f"{_as_written(self.cfg, where, value)}: {complaint}")
        if self.strict:
            self.present(values, tree)

    def present(self, values: dict, tree: KeyTree) -> None:
        """Every key whose default is not null is there."""
        for sub, node in tree.items():
            required = next((k for k in _leaves(node) if not k.nullable), None) if sub not in values else None
            if required is not None:
                group = self.base.split(".")[0]
                owner = f"{group} `name: {self.spec.name}`" if self.spec.named else self.base
                raise ConfigError(f"{self.base}.{required.name}: missing; {owner} needs it (default "
                                  f"{as_typed(required.default)}; only keys whose default is null can be left out)")


def _leaves(node: Key | KeyTree) -> Iterator[Key]:
    if isinstance(node, Key):
        yield node
    else:
        for child in node.values():
            yield from _leaves(child)


def is_required(cfg: DictConfig, key: str) -> bool:
    """Whether the spec of the key's option gives it a value, so that `~key` may not delete
    it (only keys whose default is null may be deleted)."""
    group, _, sub = key.partition(".")
    if group not in GROUPS or not sub:
        return True
    node = _spec_node(cfg, key)
    return node is True or (node is not None and any(not k.nullable for k in _leaves(node)))


def key_spec(cfg: DictConfig, key: str) -> Key | None:
    """The Key that the chosen option's spec has for a dotted config key (None when no spec
    describes it: a mapping, or a key your own component takes)."""
    node = _spec_node(cfg, key)
    return node if isinstance(node, Key) else None


def _spec_node(cfg: DictConfig, key: str) -> Key | KeyTree | bool | None:
    """The spec's node for a dotted key under its group's chosen option (True: a whole
    augmentation entry), None when none."""
    group, _, sub = key.partition(".")
    try:
        specs = option_specs(group, cfg[group])
    except (ConfigError, KeyError):
        return None
    for entry, spec in specs:
        if entry and sub == entry:  # a whole augmentation
            return True
        if entry and not sub.startswith(f"{entry}."):
            continue
        return _find(key_tree(spec), sub.removeprefix(f"{entry}.") if entry else sub)
    return None


def _find(tree: KeyTree, dotted: str) -> Key | KeyTree | None:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def unknown_key(key: str) -> ConfigError:
    group, dot, rest = key.partition(".")
    if group in GROUPS and dot:
        return UnknownKey(key, f"{key}: unknown key in group '{group}'")
    suggestion = choose_from(group, GROUPS)
    if dot:  # optimzer.lr: the whole key, corrected
        suggestion = re.sub(r"^did you mean (\S+)\?", lambda m: f"did you mean {m.group(1)}.{rest}?", suggestion)
    return ConfigError(f"{key}: unknown config group {group!r}; {suggestion}")


def _as_written(cfg: DictConfig, key: str, value: Any) -> str:
    """`key=value` as typed; an interpolation also shows what it resolved to."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, throw_on_resolution_failure=False) if parent_key else cfg
    if not (isinstance(parent, DictConfig) and leaf in parent and OmegaConf.is_interpolation(parent, leaf)):
        return f"{key}={as_typed(value)}"
    written = OmegaConf.to_container(parent, resolve=False)[leaf]
    resolved = repr(value) if isinstance(value, str) else as_typed(value)
    return f"{key}={written} resolves to {resolved}"


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def flatten(tree: Any, prefix: str = ""):
    """Yield (dotted key, leaf value) pairs of a nested dict."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, tree
