"""`optlab train -m a=1,2 b=x,y`: Hydra's multirun convention, one run after another.

Overrides are parsed with Hydra's own override parser, so every discrete sweep it knows
works (`a=1,2`, `a=range(1,4)`, `a=choice(x,y)`, `group=glob(ada*)`); the grid is their
product, in the order given. Every combination is composed (and so validated) before the
first run starts. The runs of one invocation go to OUT_DIR/multirun/<timestamp>/, each named
by the overrides that vary (Hydra's override_dirname: sorted, joined by commas).
A run that diverges or fails does not stop the grid; SIGINT/SIGTERM do. The grid trains
through optlab.training.api.train_many: with `--population K` its runs that share a structure
train K at a time as one population (seed repeats and lr grids then cost little more than
one run); runs that cannot share one train alone, with a line saying why.
"""
from __future__ import annotations

import itertools
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from optlab.errors import ConfigError, DataError, Interrupted, print_error_line, resume_hint
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
    folder as it ends, a final table (stderr) and, last on stdout, the multirun folder."""
    from optlab.training.api import RunRequest, train_many

    runs = compose_grid(overrides, config_dir)
    folder = new_multirun_dir(_out_dir(runs))
    _write_record(folder, overrides, config_dir)
    print(f"multirun: {len(runs)} run(s) in {folder}", file=sys.stderr)
    requests = [RunRequest(run.cfg, on_end=lambda result, name=run.name: _ended(name, result)) for run in runs]
    try:
        results = train_many(requests, population=population or 1, run_root=folder, on_group=GroupLines(),
                             who="multirun")
    except Interrupted as exc:  # the runs it stopped, each resumable as a solo run is
        stopped = [r.run_dir for r in getattr(exc, "results", []) if r.status == Status.INTERRUPTED]
        raise exc.going_on(resume_hint(stopped)) if stopped else exc from None
    _print_table([_row(run, result) for run, result in zip(runs, results)])
    print(folder, flush=True)
    failed = [r for r in results if r.status != Status.COMPLETED]
    return 4 if failed else 0


class GroupLines:
    """`[i] names`: each group of runs as it starts training (a population's runs on one line)."""

    def __init__(self, total: int | None = None):
        self.count, self.total = 0, total

    def __call__(self, names: list[str]) -> None:
        self.count += 1
        print(f"[{self.count}] {', '.join(names)}", file=sys.stderr, flush=True)


def _ended(name: str, result) -> None:
    """A run of the grid ended: why, when it did not complete (a signal's stop is said once,
    for the grid), and its folder on stdout."""
    if result.status == Status.INTERRUPTED:
        return
    if result.error is not None:
        print_error_line(f"{name}: {result.error}")
    elif result.status != Status.COMPLETED:
        print_error_line(f"{name}: {result.status}: {result.summary.get('reason')}")
    print(result.run_dir, flush=True)


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


def _row(run: GridRun, result) -> dict:
    summary = result.summary
    return {"run": run.name, "overrides": run.overrides, "status": result.status,
            "best_val_acc": summary.get("best_val_acc"), "final_val_loss": summary.get("final_val_loss"),
            "run_dir": str(result.run_dir)}


def _print_table(results: list[dict]) -> None:
    """The grid's results, one column per key that varies (values wrap, never cut)."""
    from rich.console import Console
    from rich.table import Table

    values = [dict(o.split("=", 1) for o in r["overrides"]) for r in results]
    keys = [k for k in dict.fromkeys(k for v in values for k in v) if len({v.get(k) for v in values}) > 1]
    table = Table(title=f"multirun: {len(results)} run(s)")
    for name in (keys or ["run"]) + ["status", "best_val_acc", "final_val_loss"]:
        table.add_column(name, overflow="fold")
    for r, v in zip(results, values):
        table.add_row(*([v.get(k, "-") for k in keys] or [r["run"]]), r["status"],
                      *(f"{r[k]:.4f}" if isinstance(r[k], float) else "-" for k in ("best_val_acc", "final_val_loss")))
    Console(file=sys.stderr).print(table)
