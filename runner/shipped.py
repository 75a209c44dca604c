"""The folders optlab ships with its code (conf, sweeps, studies, comparisons): inside the
package in an installed wheel (optlab/conf), beside the source folder runner/ in a checkout."""
from __future__ import annotations

from pathlib import Path

from optlab.errors import ConfigError, choose_from

YAML = (".yaml", ".yml")


def shipped_dir(name: str) -> Path:
    here = Path(__file__).resolve().parent  # the package's folder
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"optlab's built-in {name} are missing (looked in {here / name})")


def shipped_names(name: str) -> list[str]:
    """The names of a shipped folder's YAML files (`lr_wd`, `he2015_deep_relu`, ...)."""
    return sorted(p.stem for p in shipped_dir(name).glob("*.yaml"))


def find_shipped(name: str, folder: str, what: str) -> Path:
    """A YAML file by its path, else a shipped one by name: `sweeps/lr_wd.yaml`, `lr_wd.yaml`
    and `lr_wd` work from any directory; else one line naming the shipped ones, the closest first."""
    path = Path(name)
    if path.is_file() and (path.suffix in YAML or len(path.parts) > 1):
        return path
    for candidate in (shipped_dir(folder) / path.name, shipped_dir(folder) / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{what} {name!r}: no such file or built-in {what}; {choose_from(path.stem, shipped_names(folder))}")
