"""A small name -> component registry per config group, failing loudly on unknown names."""
from __future__ import annotations

import fnmatch
from typing import Callable, Generic, TypeVar

from runner.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, group: str):
        self.group = group
        self._entries: dict[str, T] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            for key in (name, *aliases):
                if key in self._entries:
                    raise ValueError(f"{self.group}: {key!r} registered twice")
                self._entries[key] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(
                f"{self.group}.name={name}: unknown {self.group}; choose from: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._entries
