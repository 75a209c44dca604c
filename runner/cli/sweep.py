"""`optlab sweep`: arguments, the sweep folder, the live view and the final table.

    optlab sweep FILE [overrides] [--trials N] [--jobs N] [--sampler S] [--pruner P]
                 [--storage URL] [--study NAME] [--timeout S] [--refine DIR [--top K]]

The live view (stderr) shows progress over the budget, the best so far and the top trials;
on a terminal it redraws in place, elsewhere it prints a line per finished trial. stdout
gets the final table and, as its last line, the sweep folder.
"""
from __future__ import annotations

import json
import sys
import threading
from dataclasses import replace
from pathlib import Path

from runner.errors import ConfigError, Interrupted, print_error_line
from runner.sweep.spec import SweepSpec

TOP_LIVE, TOP_FINAL = 5, 10


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="search hyper-parameters with Optuna (random, grid, TPE, GP, CMA-ES, QMC)",
                              description="Run a hyper-parameter sweep from a sweep file (see sweeps/). "
                                          "Rerunning the same command continues the study to its budget.")
    p.add_argument("file", nargs="?", help="sweep file (a path, or a name in the built-in sweeps/ folder)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides added to the sweep's base, e.g. trainer.epochs=5")
    p.add_argument("--trials", type=int, help="finished trials in total (the budget)")
    p.add_argument("--extend", type=int, metavar="N",
                   help="continue the study, unchanged, to N more trials than its last budget")
    p.add_argument("--jobs", type=int, help="worker processes (default 1 on CPU, one per GPU with GPUs)")
    p.add_argument("--per-gpu", type=int, dest="per_gpu", help="workers per GPU when --jobs is not given")
    p.add_argument("--sampler", help="random | grid | tpe | gp | cmaes | qmc")
    p.add_argument("--pruner", help="none | median | successive_halving | hyperband")
    p.add_argument("--storage", help="an SQLAlchemy URL shared by workers on several machines, e.g. postgresql://...")
    p.add_argument("--study", help="study name (default: the sweep file's name)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--seeds", type=int, help="runs per configuration (the objective is their mean)")
    p.add_argument("--seed", type=int, help="the sampler's seed (worker i uses seed + i)")
    p.add_argument("--refine", metavar="SWEEP_FOLDER", help="new study with ranges narrowed around the top trials")
    p.add_argument("--top", type=int, default=5, help="trials --refine narrows around (default 5)")
    p.add_argument("--config-dir", metavar="DIR", help="extra config folder (as for optlab train)")
    p.add_argument("--heartbeat", type=int, help="seconds between a running trial's heartbeats (default 5)")
    p.add_argument("--grace", type=int, help="seconds without a heartbeat before a trial counts as dead (default 20)")
    p.set_defaults(handler=run_sweep)


# ---------------------------------------------------------------- building the spec

def build_spec(args) -> SweepSpec:
    from runner.sweep.spec import find_sweep_file, load_spec

    changes = {k: getattr(args, k) for k in ("trials", "sampler", "pruner", "study", "timeout", "seeds",
                                            "seed", "jobs", "per_gpu", "config_dir")}
    overrides = list(args.overrides)
    if args.refine:
        if args.file:
            overrides.insert(0, args.file)
        spec = refined_spec(Path(args.refine), args.top, changes)
    elif not args.file:
        raise ConfigError("optlab sweep: give a sweep file (e.g. sweeps/lr_wd.yaml) or --refine SWEEP_FOLDER")
    else:
        spec = load_spec(find_sweep_file(args.file), changes)
    return replace(spec, base=merge_overrides(spec.base, overrides))


def refined_spec(folder: Path, top: int, changes: dict) -> SweepSpec:
    from runner.sweep.space import read_trials_csv, refine_space
    from runner.sweep.spec import spec_from_dict

    if top < 1:
        raise ConfigError(f"--top {top}: must be >= 1")
    try:
        old = json.loads((folder / "sweep.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise ConfigError(f"--refine {folder}: not a sweep folder (no readable sweep.json)") from None
    old = {k: v for k, v in old.items() if k not in ("storage", "refined_from", "source")}
    spec = spec_from_dict(old, source=str(folder / "sweep.json"))
    spec = replace(spec, space=refine_space(spec, read_trials_csv(folder / "trials.csv"), top),
                   study=f"{spec.study}-refined", refined_from=str(folder))
    return replace(spec, **{key: value for key, value in changes.items() if value is not None})


def merge_overrides(base: list[str], extra: list[str]) -> list[str]:
    """base, with entries for the same key replaced by those in extra."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in extra}
    return [o for o in base if o.split("=", 1)[0].lstrip("+~") not in keys] + extra


# ---------------------------------------------------------------- the command

def run_sweep(args) -> int:
    from runner.config.compose import compose
    from runner.runs.files import make_dirs
    from runner.sweep.outputs import write_sweep_json
    from runner.sweep.space import check_spec
    from runner.sweep.spec import check_settings
    from runner.sweep.storage import default_storage, open_storage
    from runner.sweep.study import (
        GRACE_S,
        HEARTBEAT_S,
        claim_study,
        open_study,
        quiet_optuna,
        settle_budget,
    )

    if args.extend is not None and args.extend < 1:
        raise ConfigError(f"--extend {args.extend}: must be >= 1 (trials to add)")
    spec = build_spec(args)
    check_settings(spec)
    check_spec(spec)
    base_cfg = compose(spec.base, spec.config_dir)
    sweep_dir = make_dirs(Path(str(base_cfg.trainer.out_dir)) / "sweeps" / spec.study)
    url = args.storage or spec.storage or default_storage(sweep_dir)
    quiet_optuna()
    study = open_study(spec, open_storage(url))
    claim_study(study, spec, base_cfg, str(sweep_dir))
    spec = settle_budget(study, spec, args.extend)
    write_sweep_json(spec, sweep_dir, url)
    heartbeat, grace = args.heartbeat or HEARTBEAT_S, args.grace or GRACE_S
    if heartbeat < 1 or grace < 1:
        raise ConfigError("--heartbeat and --grace: must be >= 1 second")
    code = run_workers(spec, sweep_dir, url, study, str(base_cfg.trainer.device), heartbeat, grace)
    return finish(spec, sweep_dir, study, code)


def run_workers(spec, sweep_dir, url, study, device, heartbeat, grace) -> int:
    from runner.sweep.workers import (
        WorkerArgs,
        WorkerPool,
        available_cores,
        plan,
        run_in_process,
        visible_gpus,
    )

    placements = plan(spec.jobs, spec.per_gpu, visible_gpus(device), available_cores())
    jobs = [WorkerArgs(spec, sweep_dir, url, p, heartbeat, grace) for p in placements]
    view = SweepView(spec, study, sweep_dir)
    with view:
        if len(jobs) == 1:
            try:
                run_in_process(jobs[0], after_trial=view.refresh)
            except Interrupted as exc:
                view.refresh()
                print_error_line(str(exc))
                return exc.exit_code
            return 0
        return WorkerPool(jobs).run(tick=view.refresh)


def finish(spec, sweep_dir: Path, study, code: int) -> int:
    from runner.cli.display import print_table
    from runner.sweep.outputs import best_trial, write_outputs

    rows = write_outputs(study, spec, sweep_dir)
    print_table(final_table(spec, rows))
    if code == 0 and best_trial(study, spec) is None:
        print_error_line("no trial completed (all failed, diverged or were pruned); see trials.csv")
        code = 4
    elif code in (130, 143):
        print_error_line(f"sweep stopped; rerun the same command to continue it to {spec.trials} trials")
    print(sweep_dir)
    return code


# ---------------------------------------------------------------- views

def ranked(rows: list[dict], spec: SweepSpec) -> list[dict]:
    done = [r for r in rows if r["status"] == "completed" and r["value"] is not None]
    return sorted(done, key=lambda r: r["value"], reverse=spec.direction == "maximize")


def trials_table(spec: SweepSpec, rows: list[dict], top: int, title: str):
    from rich.table import Table

    table = Table(title=title)
    for name in ("trial", "status", spec.metric, *(p.name for p in spec.space), "seconds"):
        table.add_column(name, justify="right" if name not in ("status",) else "left")
    for r in ranked(rows, spec)[:top]:
        table.add_row(str(r["number"]), r["status"], f"{r['value']:.4f}",
                      *(short(r[f"param.{p.name}"]) for p in spec.space), f"{r['duration_s'] or 0:.1f}")
    return table


def short(value) -> str:
    """A parameter as the table shows it: 4 significant digits for numbers (the CSV keeps all)."""
    if value is None or value == "":
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if number.is_integer() and "." not in str(value) else f"{number:.4g}"


def final_table(spec: SweepSpec, rows: list[dict]):
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trials"
    return trials_table(spec, rows, TOP_FINAL, f"sweep {spec.study}: {summary}")


class SweepView:
    """Rewrites trials.csv when the study changes and shows it on stderr."""

    def __init__(self, spec: SweepSpec, study, sweep_dir: Path):
        from runner.cli.display import stderr_console

        self.spec, self.study, self.sweep_dir = spec, study, sweep_dir
        self.console = stderr_console()
        self.live = None
        self.seen: dict[int, str] = {}
        self.last_rows: list[dict] | None = None
        self.lock = threading.Lock()

    def __enter__(self):
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        self.refresh()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False

    def refresh(self) -> None:
        from runner.sweep.outputs import trial_rows, write_outputs

        with self.lock:
            rows = trial_rows(self.study, self.spec)
            if rows != self.last_rows:
                rows = write_outputs(self.study, self.spec, self.sweep_dir)
                self.last_rows = rows
            if self.live is not None:
                self.live.update(self.render(rows))
            else:
                self.log_new(rows)

    def render(self, rows: list[dict]):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        finished = sum(r["status"] in ("completed", "diverged", "pruned", "failed") for r in rows)
        running = sum(r["status"] == "running" for r in rows)
        line = Table.grid(padding=(0, 1))
        line.add_row(f"sweep {self.spec.study}", ProgressBar(total=self.spec.trials, completed=finished, width=30),
                     f"{finished}/{self.spec.trials} finished, {running} running", self.best_text(rows))
        return Group(line, trials_table(self.spec, rows, TOP_LIVE, "top trials"))

    def best_text(self, rows: list[dict]) -> str:
        best = ranked(rows, self.spec)
        return f"best {self.spec.metric} {best[0]['value']:.4f} (trial {best[0]['number']})" if best else ""

    def log_new(self, rows: list[dict]) -> None:
        for r in rows:
            if r["status"] == "running" or self.seen.get(r["number"]) == r["status"]:
                continue
            self.seen[r["number"]] = r["status"]
            value = f" {self.spec.metric}={r['value']:.4f}" if r["value"] is not None else ""
            params = " ".join(f"{p.name}={r[f'param.{p.name}']}" for p in self.spec.space if r[f"param.{p.name}"])
            error = f" ({r['error']})" if r["error"] else ""
            print(f"trial {r['number']} {r['status']}{value} {params}{error}  [{self.best_text(rows)}]",
                  file=sys.stderr, flush=True)
