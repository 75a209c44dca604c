"""`optlab train -m a=1,2 b=x,y`: Hydra's multirun convention, one run after another.

Overrides are parsed with Hydra's own override parser, so every discrete sweep it knows
works (`a=1,2`, `a=range(1,4)`, `a=choice(x,y)`, `group=glob(ada*)`); the grid is their
product, in the order given. Every combination is composed (and so validated) before the
first run starts. The runs of one invocation go to OUT_DIR/multirun/<timestamp>/, each named
by the overrides that vary (Hydra's override_dirname: sorted, joined by commas).
A run that diverges or fails does not stop the grid; SIGINT/SIGTERM do. With
`--population K` the grid's runs that share a structure train K at a time as one population
(optlab.training.population): seed repeats and lr grids then cost little more than one run;
runs that cannot share one train alone, with a line saying why.
"""
from __future__ import annotations

import itertools
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from optlab.errors import ConfigError, DataError, TrainingFailed, print_error_line
from optlab.runs.status import Status


@dataclass
class GridRun:
    overrides: list[str]  # this combination, one value per override
    name: str             # trainer.name: the overrides that vary across the grid
    cfg: DictConfig       # composed and validated


def expand(overrides: list[str], config_dir: str | None = None) -> list[list[str]]:
    """The grid: one override list per combination of the sweep values."""
    from optlab.config.compose import parse_overrides

    axes = []
    for o in parse_overrides(overrides):
        if o.is_interval_sweep():
            raise ConfigError(f"{o.input_line}: -m takes lists of values (a=1,2 or range(...)); "
                              f"use optlab sweep for intervals")
        key = o.get_key_element()
        axes.append([f"{key}={v}" for v in _sweep_values(o, config_dir)] if o.is_sweep_override()
                    else [o.input_line])
    return [list(combo) for combo in itertools.product(*axes)]


def _sweep_values(override, config_dir: str | None) -> list[str]:
    from hydra.core.override_parser.types import Glob

    from optlab.config.compose import GROUPS, group_options

    if not isinstance(override.value(), Glob):
        return list(override.sweep_string_iterator())
    group = override.key_or_group
    if group not in GROUPS:
        raise ConfigError(f"{override.input_line}: glob(...) picks options of a config group; "
                          f"groups: {', '.join(GROUPS)}")
    options = group_options(group, config_dir)
    chosen = override.value().filter(options)
    if not chosen:
        raise ConfigError(f"{override.input_line}: matches no {group} option; choose from: {', '.join(options)}")
    return chosen


def compose_grid(overrides: list[str], config_dir: str | None, import_targets: bool = True) -> list[GridRun]:
    """Every combination composed and named, before anything runs (import_targets: see compose)."""
    from optlab.config.compose import Composer

    grid = expand(overrides, config_dir)
    varying = [i for i in range(len(grid[0])) if len({combo[i] for combo in grid}) > 1]
    compose, runs = Composer(config_dir, import_targets), []
    for combo in grid:
        cfg = compose(combo)
        if varying:
            cfg.trainer.name = run_name([combo[i] for i in varying])
        runs.append(GridRun(combo, str(cfg.trainer.name), cfg))
    return runs


def run_name(overrides: list[str]) -> str:
    """Hydra's override_dirname: the overrides sorted and joined by commas, made safe as a
    folder name (a '/' in a value would otherwise start a sub-folder)."""
    return re.sub(r"[^\w.=,+~-]", "_", ",".join(sorted(overrides)))


def show_grid(overrides: list[str], config_dir: str | None) -> int:
    """`-m ... --cfg`: each composed config, as YAML documents; nothing runs."""
    from optlab.config.compose import to_yaml

    runs = compose_grid(overrides, config_dir, import_targets=False)
    for i, run in enumerate(runs):
        if i:
            print("---")
        print(f"# [{i + 1}/{len(runs)}] {' '.join(run.overrides)}")
        print(to_yaml(run.cfg), end="")
    return 0


def run_grid(overrides: list[str], config_dir: str | None, population: int | None = None) -> int:
    """Run every combination (K at a time per structure with a population); print each run
    folder, a final table (stderr) and, last on stdout, the multirun folder."""
    runs = compose_grid(overrides, config_dir)
    folder = new_multirun_dir(_out_dir(runs))
    _write_record(folder, overrides, config_dir)
    print(f"multirun: {len(runs)} run(s) in {folder}", file=sys.stderr)
    results = []
    for i, batch in enumerate(batches(runs, population or 1)):
        print(f"[{i + 1}] {', '.join(run.name for run in batch)}", file=sys.stderr)
        results += _run_population(batch, folder) if len(batch) > 1 else [_run_one(batch[0], folder)]
    _print_table(results)
    print(folder, flush=True)
    failed = [r for r in results if r["status"] != Status.COMPLETED]
    return 4 if failed else 0


def batches(runs: list[GridRun], size: int) -> list[list[GridRun]]:
    """The runs in groups that train together: up to `size` runs of one structure (in grid
    order); a run that cannot join a population is a group of its own, said on stderr."""
    from optlab.training.population import structure, why_solo

    if size == 1:
        return [[run] for run in runs]
    by_structure: dict[str, list[GridRun]] = {}
    groups: list[list[GridRun]] = []
    for run in runs:
        reason = why_solo(run.cfg)
        if reason:
            print(f"multirun: {run.name} trains alone: {reason}", file=sys.stderr)
            groups.append([run])
        else:
            by_structure.setdefault(structure(run.cfg), []).append(run)
    for members in by_structure.values():
        groups += [members[i:i + size] for i in range(0, len(members), size)]
    return groups


def _out_dir(runs: list[GridRun]) -> Path:
    out_dirs = {str(run.cfg.trainer.out_dir) for run in runs}
    if len(out_dirs) > 1:
        raise ConfigError("trainer.out_dir: one multirun writes into one folder; give a single trainer.out_dir")
    return Path(out_dirs.pop())


def new_multirun_dir(out_dir: Path) -> Path:
    """OUT_DIR/multirun/<timestamp>/, unique when two multiruns start in the same second."""
    root = Path(out_dir) / "multirun"
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = root / (f"{stamp}-{attempt}" if attempt else stamp)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise DataError(f"{root}: could not create a unique multirun folder")


def _write_record(folder: Path, overrides: list[str], config_dir: str | None) -> None:
    """multirun.yaml: the command's overrides, so the folder says how it was made."""
    import yaml

    from optlab.runs.files import write_atomic

    write_atomic(folder / "multirun.yaml", yaml.safe_dump({"overrides": list(overrides), "config_dir": config_dir},
                                                          sort_keys=False))


def _run_one(run: GridRun, folder: Path) -> dict:
    from optlab.training.loop import train

    try:
        result = train(run.cfg, run_root=folder)
        status, summary, run_dir = result.status, result.summary, result.run_dir
    except TrainingFailed as exc:
        if exc.result is None:
            raise
        status, summary, run_dir = exc.result.status, exc.result.summary, exc.result.run_dir
        print_error_line(str(exc))
    print(run_dir, flush=True)
    return _row(run.name, status, summary, run_dir)


def _run_population(batch: list[GridRun], folder: Path) -> list[dict]:
    from optlab.training.population import train_population

    results = train_population([run.cfg for run in batch], run_root=folder)
    rows = []
    for run, result in zip(batch, results):
        if result.status != Status.COMPLETED:
            print_error_line(f"{run.name}: {result.status}: {result.summary.get('reason')}")
        print(result.run_dir, flush=True)
        rows.append(_row(run.name, result.status, result.summary, result.run_dir))
    return rows


def _row(name: str, status: str, summary: dict, run_dir: Path) -> dict:
    return {"run": name, "status": status, "best_val_acc": summary.get("best_val_acc"),
            "final_val_loss": summary.get("final_val_loss"), "run_dir": str(run_dir)}


def _print_table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"multirun: {len(results)} run(s)")
    for name in ("run", "status", "best_val_acc", "final_val_loss"):
        table.add_column(name)
    for r in results:
        table.add_row(r["run"], r["status"], *(f"{r[k]:.4f}" if isinstance(r[k], float) else "-"
                                                for k in ("best_val_acc", "final_val_loss")))
    Console(file=sys.stderr).print(table)
