"""Registries of option specs, one per config group, failing loudly on unknown names.

A spec is a frozen dataclass that owns everything about one option: its name, its one-line
description (what `optlab list` shows), the keys it takes (each a `Key`: default, range,
choices, whether it may be null) and its family's own fields (the function that implements
it, flags such as `needs_images`). Config validation asks the chosen option's spec; the
option's YAML declares the same keys and defaults (tests/test_specs.py checks both ways).
"""
from __future__ import annotations

import copy
import fnmatch
import functools
import importlib
import inspect
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Generic, Iterator, TypeVar

from optlab.errors import ConfigError, choose_from

# ---------------------------------------------------------------- keys


@dataclass(frozen=True)
class Check:
    """A condition a key's value must meet, and the words that say it ("> 0", "in [0, 1)")."""

    test: Callable[[Any], bool]
    expect: str


POSITIVE = Check(lambda v: v > 0, "> 0")
NON_NEGATIVE = Check(lambda v: v >= 0, ">= 0")
UNIT = Check(lambda v: 0 <= v <= 1, "in [0, 1]")
OPEN_UNIT = Check(lambda v: 0 < v < 1, "in (0, 1)")
HALF_OPEN_UNIT = Check(lambda v: 0 <= v < 1, "in [0, 1)")


def at_least(low: int) -> Check:
    return Check(lambda v: v >= low, f">= {low}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_typed(value: Any) -> str:
    """A value as typed on the command line (YAML's null, true and false)."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


_FITS: dict[type, Callable[[Any], bool]] = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: is_number,
    str: lambda v: isinstance(v, str) or is_number(v),
    list: lambda v: isinstance(v, list),
}

_TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class Key:
    """One key of an option. The default declares the type (`kind` does where the default is
    null), and null is allowed exactly where the default is null."""

    name: str                      # below the option; nested keys are dotted: "bias.name"
    default: Any
    check: Check | None = None     # the range of a number, or what a list must be
    choices: tuple[str, ...] = ()  # the only values, as typed
    words: tuple[str, ...] = ()    # words a number may be replaced by (init.gain=activation)
    pattern: str = ""              # a regex the value must match; `choices` names its forms
    kind: type | None = None       # the type when the default is null

    @property
    def nullable(self) -> bool:
        return self.default is None

    @property
    def type(self) -> type | None:
        return self.kind if self.default is None else type(self.default)

    def rule(self) -> str:
        """What the key takes beyond its type, in the words its complaints use ("> 0", "one
        of: pre, post", "a number > 0, or activation"); "" when any value of its type goes."""
        if self.choices:
            return f"one of: {', '.join(self.choices)}"
        if self.words:
            number = f"a number {self.check.expect}" if self.check is not None else "a number"
            return f"{number}, or {', '.join(self.words)}"
        return self.check.expect if self.check is not None else ""

    def complaint(self, value: Any) -> str | None:
        """What is wrong with `value` (resolved) for this key, or None when it is fine."""
        if value is None:
            if self.nullable:
                return None
            return (f"expected {_TYPE_NAMES[self.type]}, not null "
                    f"(only keys whose default is null can be null)")
        if self.choices:
            return self._choice_complaint(value)
        if self.words and not is_number(value):
            return None if value in self.words else \
                f"choose from: {', '.join(self.words)}, or a number {self.check.expect}"
        if self.type is not None and not _FITS.get(self.type, lambda v: True)(value):
            return f"expected {_TYPE_NAMES[self.type]}"
        if self.check is not None and not self._meets_check(value):
            return f"must be {self.check.expect}"
        return None

    def _choice_complaint(self, value: Any) -> str | None:
        text = as_typed(value)
        fits = re.fullmatch(self.pattern, text) if self.pattern else text in self.choices
        return None if fits else choose_from(text, self.choices)

    def _meets_check(self, value: Any) -> bool:
        if is_number(value):
            return math.isfinite(value) and self.check.test(value)
        return self.check.test(value)


# ---------------------------------------------------------------- specs


@dataclass(frozen=True, kw_only=True)
class Spec:
    """What every option's spec has. Each family adds its own fields in a frozen subclass."""

    name: str
    description: str  # one line, for `optlab list`
    keys: tuple[Key, ...] = ()
    named: ClassVar[bool] = True  # the option's mapping says `name: <spec name>`
    # your own component (`custom`): the parameters of the function its `_target_` names;
    # it takes any key besides its own and passes them on in cfg
    target: tuple[str, ...] = ()

    def key_names(self) -> list[str]:
        return [k.name for k in self.keys]

    def defaults(self, **values: Any) -> dict:
        """The option's mapping as its YAML declares it, with some values replaced:
        `spec.defaults(gamma=0.5)`, nested keys by their dotted name (`**{"bias.name": ...}`)."""
        flat = {k.name: copy.deepcopy(k.default) for k in self.keys}
        unknown = sorted(set(values) - set(flat))
        if unknown:
            raise KeyError(f"{', '.join(unknown)}: not a key of {self.name} (its keys: {', '.join(flat)})")
        flat.update(values)
        tree: dict = {"name": self.name} if self.named else {}
        for dotted, value in flat.items():
            *parents, leaf = dotted.split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return tree


@dataclass(frozen=True, kw_only=True)
class KeysOnlySpec(Spec):
    """A group without options to choose between, only keys (trainer, regularize, ...): one
    spec, whatever its option files are called."""

    named: ClassVar[bool] = False


S = TypeVar("S", bound=Spec)


class Registry(Generic[S]):
    """The specs of one config group by name."""

    def __init__(self, group: str):
        self.group = group
        self._specs: dict[str, S] = {}

    def add(self, spec: S) -> S:
        if spec.name in self._specs:
            raise ValueError(f"{self.group}: {spec.name!r} registered twice")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> S:
        if name not in self._specs:
            raise ConfigError(f"{self.group}.name={name}: unknown {self.group}; {choose_from(name, self.names())}")
        return self._specs[name]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._specs if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[S]:
        return iter(self._specs[name] for name in self.names())


# ---------------------------------------------------------------- your own components


TARGET = Key("_target_", None, kind=str)  # module:function (or module.function), Hydra's convention


@functools.cache  # a schedule's function is looked up every step
def import_target(where: str, target: str | None, params: tuple[str, ...]) -> Callable:
    """The function `target` names (`pkg.module:function` or `pkg.module.function`), imported
    from sys.path or the working directory, after a check that it takes `params`; every
    failure is a ConfigError of one line naming `where` (`model._target_`)."""
    if not target:
        raise ConfigError(f"{where}: missing; name your function as {where}=module:function, "
                          f"taking ({', '.join(params)})")
    module_name, _, attr = target.rpartition(":") if ":" in target else target.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{where}={target}: expected module:function")
    function = getattr(_import_module(where, target, module_name), attr, None)
    if function is None:
        raise ConfigError(f"{where}={target}: module {module_name} has no attribute {attr}")
    if not callable(function):
        raise ConfigError(f"{where}={target}: {attr} is not a function")
    _check_signature(where, target, function, params)
    return function


def _import_module(where: str, target: str, module_name: str):
    if os.getcwd() not in sys.path:  # the console script's sys.path lacks the directory it runs in
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 -- a missing module, or one whose own code fails: the user's to fix
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ConfigError(f"{where}={target}: cannot import {module_name} ({detail})") from None


def _check_signature(where: str, target: str, function: Callable, params: tuple[str, ...]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin without a signature: called as it is
    try:
        signature.bind(*params)
    except TypeError:
        raise ConfigError(f"{where}={target}: {function.__name__}{signature} does not take "
                          f"({', '.join(params)})") from None
