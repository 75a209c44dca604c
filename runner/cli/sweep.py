"""`optlab sweep`: arguments, the live view, the final table and the last line.

    optlab sweep FILE [overrides] [--trials N] [--jobs N] [--sampler S] [--pruner P]
                 [--storage URL] [--study NAME] [--timeout S] [--refine DIR [--top K]]
                 [--launcher slurm --workers W [--wait] [launcher.KEY=VALUE ...]]
    optlab sweep --watch SWEEP_DIR | --cancel SWEEP_DIR

optlab.sweep builds the spec (build.py) and runs the sweep (run.py), writing trials.csv as it
goes; this module only shows the rows it is handed. The live view (stderr) shows progress
over the budget, the best so far and the top trials; on a terminal it redraws in place,
elsewhere it prints a line per finished trial. stdout gets the final table and, as its last
line, the sweep folder.
"""
from __future__ import annotations

import sys
from pathlib import Path

from optlab.cli.display import with_examples
from optlab.errors import Interrupted, print_error_line, rerun_hint
from optlab.runs.status import FINISHED
from optlab.sweep.outputs import param_column
from optlab.sweep.spec import SweepSpec, metric_label

TOP_LIVE, TOP_FINAL = 5, 10


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="search hyper-parameters with Optuna (random, grid, TPE, GP, CMA-ES, QMC)",
                              description="Run a hyper-parameter sweep from a sweep file (see sweeps/). "
                                          "Rerunning the same command continues the study to its budget.",
                              **with_examples(
                                  ("optlab sweep sweeps/lr_wd.yaml --trials 20 --jobs 2", "TPE over lr and weight decay"),
                                  ("optlab sweep sweeps/lr_wd.yaml --extend 10", "the same study, 10 more trials"),
                                  ("optlab sweep sweeps/lr_wd.yaml --refine outputs/sweeps/lr_wd --top 5",
                                   "coarse to fine")))
    p.add_argument("file", nargs="?", help="sweep file (a path, or a name in the built-in sweeps/ folder)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides added to the sweep's base, e.g. trainer.epochs=5")
    p.add_argument("--trials", type=int, help="finished trials in total (the budget)")
    p.add_argument("--extend", type=int, metavar="N",
                   help="continue the study, unchanged, to N more trials than its last budget")
    p.add_argument("--jobs", type=int, help="worker processes (default 1 on CPU, one per GPU with GPUs)")
    p.add_argument("--per-gpu", type=int, dest="per_gpu", help="workers per GPU when --jobs is not given")
    p.add_argument("--population", metavar="K|auto",
                   help="train up to K trials' runs of one structure at once in each worker, as one vectorized "
                        "population (auto: the K whose step is fastest per member, measured at the start)")
    p.add_argument("--scheduler", help="none | pbt (Population Based Training of the --population K members)")
    p.add_argument("--sampler", help="random | grid | tpe | gp | cmaes | qmc")
    p.add_argument("--pruner", help="none | median | successive_halving | hyperband")
    p.add_argument("--storage", help="where the study lives, shared by workers on several machines: "
                                     "postgresql://..., journal:FILE (a file on a shared filesystem) or sqlite:///FILE")
    p.add_argument("--study", help="study name (default: the sweep file's name)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--seeds", type=int, help="runs per configuration (the objective is their mean)")
    p.add_argument("--seed", type=int, help="the sampler's seed (worker i uses seed + i)")
    p.add_argument("--refine", metavar="SWEEP_FOLDER", help="new study with ranges narrowed around the top trials")
    p.add_argument("--top", type=int, default=5, help="trials --refine narrows around (default 5)")
    p.add_argument("--config-dir", metavar="DIR", help="extra config folder (as for optlab train)")
    add_liveness_flags(p)
    p.add_argument("--storage-timeout", type=float, metavar="SECONDS",
                   help="how long a storage outage is waited out before the sweep stops, exit 5 (default 60)")
    p.add_argument("--launcher", default="local",
                   help="where the workers run: local (processes of this command) or slurm (one job array; "
                        "conf/launcher/slurm.yaml, keys overridden as launcher.KEY=VALUE)")
    p.add_argument("--workers", type=int, help="Slurm array tasks, each a worker on the shared study (default 1)")
    p.add_argument("--wait", action="store_true", help="with --launcher slurm: follow the jobs to the end")
    p.add_argument("--watch", metavar="SWEEP_FOLDER", help="follow a Slurm sweep's study and jobs to its end")
    p.add_argument("--cancel", metavar="SWEEP_FOLDER", help="cancel a Slurm sweep's jobs")
    p.add_argument("--html", action="store_true",
                   help="at the end, write the sweep's report with its page (optlab report SWEEP_FOLDER --html "
                        "--metric METRIC: report.html beside report.csv); its table goes to stderr")
    p.set_defaults(handler=run_sweep)


def add_liveness_flags(p) -> None:
    """--heartbeat and --grace, for every command that runs sweeps (read back by liveness)."""
    p.add_argument("--heartbeat", type=int, metavar="S", help="seconds between a running trial's heartbeats (default 5)")
    p.add_argument("--grace", type=int, metavar="S", help="seconds without a heartbeat before a killed process's "
                                                          "trial counts as dead and runs again (default 20)")


def liveness(args) -> dict:
    """--heartbeat and --grace as RunOptions keywords, the defaults where not given."""
    from optlab.sweep.study import GRACE_S, HEARTBEAT_S

    return {"heartbeat": HEARTBEAT_S if args.heartbeat is None else args.heartbeat,
            "grace": GRACE_S if args.grace is None else args.grace}


# ---------------------------------------------------------------- the command

SPEC_CHANGES = ("trials", "sampler", "pruner", "study", "timeout", "seeds", "seed", "jobs", "per_gpu", "population",
                "config_dir", "scheduler")


def run_sweep(args) -> int:
    from optlab.sweep.build import build_spec
    from optlab.sweep.launch import launch_for
    from optlab.sweep.launcher import launcher_overrides, load_launcher
    from optlab.sweep.run import RunOptions, start_sweep

    if args.watch or args.cancel:
        if args.cancel:
            return cancel_sweep(Path(args.cancel))
        return watch_sweep(Path(args.watch), args.storage, html=args.html)
    overrides = list(args.overrides)
    if args.refine and args.file:  # with --refine, the first positional is an override
        overrides.insert(0, args.file)
    launcher_keys, overrides = launcher_overrides(overrides)
    launcher = load_launcher(args.launcher, args.config_dir, launcher_keys)
    launch = launch_for(launcher)
    launch.check_flags(args.jobs, args.workers, args.wait)
    options = RunOptions(storage=args.storage, extend=args.extend, **liveness(args), launcher=launcher.kind,
                         storage_timeout=args.storage_timeout)
    launch.check(launcher)
    spec = build_spec(None if args.refine else args.file, refine=args.refine or None, top=args.top,
                      changes={k: getattr(args, k) for k in SPEC_CHANGES}, overrides=overrides)
    sweep = start_sweep(spec, options)
    with SweepView(sweep.spec) as view:
        launched = launch.launch(sweep, launcher, options, args.workers, view.show)
    if launched.job is None:  # the workers ran here
        return finish(sweep.spec, sweep.sweep_dir, launched.outcome, args.html)
    print(f"submitted job array {launched.job} ({args.workers or 1} workers) for sweep {sweep.spec.study}; "
          f"follow it with: optlab sweep --watch {sweep.sweep_dir}", file=sys.stderr, flush=True)
    if args.wait:
        return watch_sweep(sweep.sweep_dir, options.storage, job_id=launched.job, html=args.html)
    print(f"job {launched.job}")
    print(sweep.sweep_dir)
    return 0


def watch_sweep(sweep_dir: Path, storage: str | None, job_id: str | None = None, html: bool = False) -> int:
    """The live view of a Slurm sweep until its budget is reached or its jobs are gone."""
    from optlab.sweep.outputs import best_trial, write_outputs
    from optlab.sweep.run import Outcome
    from optlab.sweep.slurm import LOGS, Follow
    from optlab.sweep.storage import retry_trials_of_gone_workers

    follow = Follow(sweep_dir, storage)
    spec, study = follow.spec_and_study()
    with SweepView(spec) as view:
        follow.run(spec, study, view.show_with_jobs)
    retry_trials_of_gone_workers(study, sweep_dir)  # no task is alive: a RUNNING trial's worker was killed
    rows = write_outputs(study, spec, sweep_dir)
    done = sum(r["status"] in FINISHED for r in rows)
    code = 0 if done >= spec.trials else 5  # the cluster ended the jobs: the environment's doing, not a bug
    if code:
        print_error_line(f"the sweep's Slurm jobs ended with {done} of {spec.trials} trials finished; "
                         f"rerun the sweep command to continue it (the tasks' logs: {Path(sweep_dir) / LOGS})")
    if job_id is not None:
        print(f"job {job_id}")
    return finish(spec, sweep_dir, Outcome(rows, code, best_trial(study, spec)), html)


def cancel_sweep(sweep_dir: Path) -> int:
    from optlab.sweep.slurm import cancel

    jobs = cancel(sweep_dir)
    print(f"cancelled Slurm job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}", file=sys.stderr)
    print(sweep_dir)
    return 0


def finish(spec: SweepSpec, sweep_dir: Path, outcome, html: bool = False) -> int:
    """The final table, what to do next, the report with its page (--html), and the sweep
    folder as stdout's last line."""
    from optlab.cli.display import print_table

    print_table(final_table(spec, outcome.rows))
    if html:
        write_report(sweep_dir, spec)
    code = outcome.code
    if code == 0 and outcome.best is None:
        print_error_line("no trial completed (all failed, diverged or were pruned); see trials.csv")
        code = 4
    elif code in (130, 143):  # one line: a trial's run is the sweep's to resume, not the user's
        signum = outcome.stopped.signum if outcome.stopped is not None else code - 128
        print_error_line(str(Interrupted(signum, rerun_hint(f"continue it to {spec.trials} trials"))))
    print(sweep_dir)
    return code


def write_report(sweep_dir: Path, spec: SweepSpec) -> None:
    """optlab report SWEEP_DIR --html --metric METRIC, its output on stderr; a report that
    cannot be made is one line, and the sweep's own exit code stands."""
    import contextlib

    from optlab.cli.report import report_args, run_report
    from optlab.errors import OptlabError

    try:
        with contextlib.redirect_stdout(sys.stderr):
            run_report(report_args([str(sweep_dir), "--html", "--metric", spec.metric, "--at", spec.at]))
    except OptlabError as exc:
        print_error_line(f"--html: no report: {exc}")


# ---------------------------------------------------------------- views

def ranked(rows: list[dict], spec: SweepSpec) -> list[dict]:
    done = [r for r in rows if r["status"] == "completed" and r["value"] is not None]
    return sorted(done, key=lambda r: r["value"], reverse=spec.direction == "maximize")


def trials_table(spec: SweepSpec, rows: list[dict], top: int, title: str):
    from rich.table import Table

    table = Table(title=title)
    for name in ("trial", "status", metric_label(spec.metric, spec.at), *(p.name for p in spec.space), "seconds"):
        table.add_column(name, justify="right" if name not in ("status",) else "left")
    for r in ranked(rows, spec)[:top]:
        table.add_row(str(r["number"]), r["status"], f"{r['value']:.4f}",
                      *(short(r[param_column(p.name)]) for p in spec.space), f"{r['duration_s'] or 0:.1f}")
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
    """Shows the rows it is handed on stderr; it reads nothing else and writes no file."""

    def __init__(self, spec: SweepSpec):
        from optlab.cli.display import stderr_console

        self.spec = spec
        self.console = stderr_console()
        self.live = None
        self.seen: dict[int, str] = {}
        self.jobs = ""  # the Slurm tasks alive, when watching a Slurm sweep

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False

    def show(self, rows: list[dict]) -> None:
        """On a terminal, the live view (started with the first rows: a sweep whose workers run
        elsewhere shows none); elsewhere a line per finished trial."""
        if self.console.is_terminal and self.live is None:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        if self.live is not None:
            self.live.update(self.render(rows))
        else:
            self.log_new(rows)

    def show_with_jobs(self, rows: list[dict], alive: dict[str, str]) -> None:
        jobs = f"{len(alive)} Slurm task{'s' if len(alive) != 1 else ''} alive"
        if jobs != self.jobs and self.live is None:
            print(f"{jobs}: {' '.join(f'{k} {v}' for k, v in sorted(alive.items()))}", file=sys.stderr, flush=True)
        self.jobs = jobs
        self.show(rows)

    def render(self, rows: list[dict]):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        finished = sum(r["status"] in FINISHED for r in rows)
        running = sum(r["status"] == "running" for r in rows)
        line = Table.grid(padding=(0, 1))
        line.add_row(f"sweep {self.spec.study}", ProgressBar(total=self.spec.trials, completed=finished, width=30),
                     f"{finished}/{self.spec.trials} finished, {running} running", self.best_text(rows), self.jobs)
        return Group(line, trials_table(self.spec, rows, TOP_LIVE, "top trials"))

    def best_text(self, rows: list[dict]) -> str:
        best = ranked(rows, self.spec)
        label = metric_label(self.spec.metric, self.spec.at)
        return f"best {label} {best[0]['value']:.4f} (trial {best[0]['number']})" if best else ""

    def log_new(self, rows: list[dict]) -> None:
        for r in rows:
            if r["status"] == "running" or self.seen.get(r["number"]) == r["status"]:
                continue
            self.seen[r["number"]] = r["status"]
            value = f" {metric_label(self.spec.metric, self.spec.at)} {r['value']:.4f}" if r["value"] is not None else ""
            params = "".join(f" {p.name}={r[param_column(p.name)]}" for p in self.spec.space
                             if r[param_column(p.name)])
            error = f" ({r['error']})" if r["error"] else ""
            best = self.best_text(rows)
            print(f"trial {r['number']} {r['status']}{value}{params}{error}" + (f"  [{best}]" if best else ""),
                  file=sys.stderr, flush=True)
