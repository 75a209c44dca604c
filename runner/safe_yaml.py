"""Every YAML file optlab reads, within bounds: its size, its nodes with every alias expanded,
and its nesting depth.

A YAML alias repeats a node without copying its text, so a few hundred bytes of nested
aliases (a "billion laughs") stand for billions of nodes: PyYAML builds them as shared
references, and the first walk over the tree (OmegaConf, a copy, a JSON dump) expands them
until memory runs out. A hundred thousand `[` overflow the recursive composers of PyYAML,
OmegaConf and Hydra. So a file is first streamed through the parser's events (no tree is
built, no recursion), counting each alias as the size of the node it names; a file past a
bound is refused with the bound it broke before anything builds it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from optlab.errors import ConfigError

MAX_BYTES = 8 * 1024 * 1024   # a run's config.yaml is a few kB; a sweep file with a large categorical, a few MB
MAX_NODES = 1_000_000         # scalars and collections, with every alias expanded
MAX_DEPTH = 64                # collections inside collections (a run config nests 3 deep)


class YamlBoundError(ValueError):
    """A YAML text past a bound: its size, its expanded nodes or its depth."""


def _parser_loader():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_file(path: Path, error: type[Exception] = ConfigError, where: Path | str | None = None) -> str:
    """The file's text; `error` naming `where` (the path) when it is larger than MAX_BYTES
    or not UTF-8."""
    where = path if where is None else where
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise error(f"{where}: refused: larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not a text file (byte {exc.start} is not UTF-8)") from None


def check_text(text: str, where: Path | str, error: type[Exception] = ConfigError) -> None:
    """`error` naming `where` and why when the text is past a bound or is not valid YAML (for
    a text another YAML reader, OmegaConf's or Hydra's, then reads)."""
    import yaml

    try:
        check(text)
    except YamlBoundError as exc:
        raise error(f"{where}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None


def load_text(text: str, where: Path | str, error: type[Exception] = ConfigError) -> Any:
    """yaml.safe_load of a text within the bounds (errors as check_text's)."""
    import yaml

    check_text(text, where, error)
    try:
        return yaml.load(text, Loader=_parser_loader())
    except yaml.YAMLError as exc:  # an alias to no anchor: found only when the tree is built
        raise error(f"{where}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None


def load_file(path: Path, error: type[Exception] = ConfigError, where: Path | str | None = None) -> Any:
    """A YAML file's contents, within the bounds (see load_text); errors name `where` (the path)."""
    where = path if where is None else where
    return load_text(read_file(path, error, where), where, error)


def check(text: str) -> None:
    """Raise YamlBoundError when `text` is past a bound (yaml.YAMLError when it does not parse)."""
    import yaml

    if len(text) > MAX_BYTES:
        raise YamlBoundError(f"larger than {MAX_BYTES // (1024 * 1024)} MB")
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height) of the node it names
    frames: list[list] = []  # open collections: [anchor, nodes before it, height inside]
    nodes = 0
    for event in yaml.parse(text, Loader=_parser_loader()):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            frames.append([event.anchor, nodes, 0])
            if len(frames) > MAX_DEPTH:
                raise YamlBoundError(f"nested deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, before, inside = frames.pop()
            size, height = nodes - before + 1, inside + 1
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size, height = event.anchor, 1, 0
        elif isinstance(event, yaml.AliasEvent):
            anchor = None
            size, height = anchors.get(event.anchor, (1, 0))
        else:
            continue
        nodes += size if not isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)) else 1
        if anchor is not None:
            anchors[anchor] = (size, height)
        if frames:
            frames[-1][2] = max(frames[-1][2], height)
            if len(frames) + height > MAX_DEPTH:
                raise YamlBoundError(f"nested deeper than {MAX_DEPTH} levels (aliases expanded)")
        if nodes > MAX_NODES:
            raise YamlBoundError(f"more than {MAX_NODES:,} values once its aliases are expanded")
