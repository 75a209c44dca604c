"""`optlab train -m a=1,2 b=x,y`: Hydra's multirun convention, one run after another.

Overrides are parsed with Hydra's own override parser, so every discrete sweep it knows
works (`a=1,2`, `a=range(1,4)`, `a=choice(x,y)`); the grid is their product, in the order
given. Every combination is composed (and so validated) before the first run starts.
A run that diverges or fails does not stop the grid; SIGINT/SIGTERM do.
"""
from __future__ import annotations

import itertools
import sys

from runner.errors import ConfigError, TrainingFailed, print_error_line


def expand(overrides: list[str]) -> list[list[str]]:
    """The grid: one override list per combination of the sweep values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    axes = []
    for o in parsed:
        key = o.get_key_element()
        if not o.is_sweep_override():
            axes.append([f"{key}={o.get_value_element_as_str()}"])
        elif o.is_discrete_sweep():
            axes.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            raise ConfigError(f"{o.input_line}: -m takes lists of values (a=1,2 or range(...)); "
                              f"use optlab sweep for intervals")
    return [list(combo) for combo in itertools.product(*axes)]


def run_grid(overrides: list[str], config_dir: str | None) -> int:
    """Run every combination; print each run folder (stdout) and a final table."""
    from runner.config import compose

    grid = expand(overrides)
    configs = [compose(combo, config_dir) for combo in grid]
    print(f"multirun: {len(grid)} run(s)", file=sys.stderr)
    results = []
    for i, (combo, cfg) in enumerate(zip(grid, configs)):
        print(f"[{i + 1}/{len(grid)}] {' '.join(combo)}", file=sys.stderr)
        results.append(_run_one(cfg, combo))
    _print_table(results)
    failed = [r for r in results if r["status"] != "completed"]
    return 4 if failed else 0


def _run_one(cfg, combo: list[str]) -> dict:
    from runner.train import train

    try:
        result = train(cfg)
        status, summary, run_dir = result.status, result.summary, result.run_dir
    except TrainingFailed as exc:
        if exc.result is None:
            raise
        status, summary, run_dir = exc.result.status, exc.result.summary, exc.result.run_dir
        print_error_line(str(exc))
    print(run_dir, flush=True)
    return {"overrides": " ".join(combo), "status": status, "best_val_acc": summary.get("best_val_acc"),
            "final_val_loss": summary.get("final_val_loss"), "run_dir": str(run_dir)}


def _print_table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"multirun: {len(results)} run(s)")
    for name in ("overrides", "status", "best_val_acc", "final_val_loss"):
        table.add_column(name)
    for r in results:
        table.add_row(r["overrides"], r["status"], *(f"{r[k]:.4f}" if isinstance(r[k], float) else "-"
                                                      for k in ("best_val_acc", "final_val_loss")))
    Console(file=sys.stderr).print(table)
