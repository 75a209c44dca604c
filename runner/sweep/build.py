"""The one place a sweep's spec is made: from a sweep file or a refined sweep folder, with the
command line's changes and extra overrides, then validated once (the settings, and base +
probe samples of the space composed). Nothing edits the spec afterwards."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from optlab.errors import ConfigError
from optlab.sweep.outputs import (
    assignment_of_row,
    best_rows,
    read_sweep_json,
    read_trial_rows,
)
from optlab.sweep.pbt import check_pbt_spec
from optlab.sweep.space import check_probes, refine_space
from optlab.sweep.spec import (
    SweepSpec,
    base_overrides,
    check_settings,
    find_sweep_file,
    override_key,
    read_sweep_file,
    spec_from_dict,
)


def build_spec(file: str | None = None, *, refine: str | Path | None = None, top: int = 5,
               changes: dict | None = None, overrides: Sequence[str] = ()) -> SweepSpec:
    """The spec a sweep starts with: the sweep file, or with `refine` the sweep in that folder
    with its ranges narrowed around its `top` trials; `changes` (None values ignored) over it,
    and `overrides` replacing the base's entries for the same keys."""
    if refine is not None:
        raw, source, text = _refined(Path(refine), top)
    elif file:
        path = find_sweep_file(file)
        (raw, text), source = read_sweep_file(path), str(path)
    else:
        raise ConfigError("optlab sweep: give a sweep file (e.g. sweeps/lr_wd.yaml) or --refine SWEEP_FOLDER")
    raw = {**raw, **{k: v for k, v in (changes or {}).items() if v is not None}}
    raw["base"] = merge_overrides(base_overrides(raw.get("base")), overrides)
    spec = spec_from_dict(raw, source=source, source_text=text)
    validate(spec)
    return spec


def validate(spec: SweepSpec) -> None:
    """Everything a spec is checked for, once per sweep start."""
    check_settings(spec)
    check_pbt_spec(spec)
    check_searched_keys(spec)
    check_probes(spec)


def check_searched_keys(spec: SweepSpec) -> None:
    """An override of a key the space searches (from the command line, a study's base or arm,
    or the sweep's own base) would be replaced by every trial's sample: refused, not dropped."""
    searched = {p.key: p.name for p in spec.space}
    for override in spec.base:
        key = override_key(override)
        if key in searched:
            raise ConfigError(f"{override}: {spec.source or f'sweep {spec.study}'} searches {key} (space "
                              f"'{searched[key]}'), so every trial would replace this value with its sample; "
                              f"remove {key} from the space, or drop the override")


def merge_overrides(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """base, with entries for the same key replaced by those in extra."""
    keys = {override_key(o) for o in extra}
    return [o for o in base if override_key(o) not in keys] + list(extra)


def _refined(folder: Path, top: int) -> tuple[dict, str, None]:
    """The mapping of a new study, `<study>-refined`, whose space is the old sweep's narrowed
    around its `top` completed trials (space.refine_space)."""
    if top < 1:
        raise ConfigError(f"--top {top}: must be >= 1")
    try:
        raw = read_sweep_json(folder)
    except ConfigError as exc:
        raise ConfigError(f"--refine {exc}") from None
    source = str(folder / "sweep.json")
    old = spec_from_dict(raw, source=source)
    best = [assignment_of_row(old.space, row) for row in best_rows(read_trial_rows(folder), old.direction, top)]
    if not best:
        raise ConfigError("--refine: the sweep has no completed trial to refine around")
    space = {p.name: p.raw() for p in refine_space(old.space, best)}
    return {**raw, "study": f"{old.study}-refined", "refined_from": str(folder), "space": space}, source, None


def recorded_spec(sweep_dir: Path) -> SweepSpec:
    """The spec a sweep ran with, read back from its sweep.json (settings checked; its space
    was probed when it started)."""
    spec = spec_from_dict(read_sweep_json(sweep_dir), source=str(Path(sweep_dir) / "sweep.json"))
    check_settings(spec)
    return spec
