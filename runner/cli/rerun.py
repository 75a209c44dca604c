"""`optlab rerun SWEEP_DIR [--top K] [--seeds N]`: the best K configurations of a sweep, each
trained again with N fresh seeds (seeds the sweep never used), then the seed-aggregated table.

A sweep's best value is the maximum of many noisy ones, so it is biased upwards; fresh seeds
give an honest estimate of the chosen configurations (DeepOBS: rerun the best setting with
10 seeds). The runs go to SWEEP_DIR/rerun/; a second call reuses the runs that completed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from optlab.cli.display import with_examples
from optlab.errors import ConfigError, print_error_line


def register(subparsers) -> None:
    p = subparsers.add_parser("rerun", help="rerun a sweep's best configurations with fresh seeds, then report",
                              description="Train the best --top configurations of a finished sweep again, each "
                                          "with --seeds seeds the sweep did not use, into SWEEP_DIR/rerun/, and "
                                          "print the seed-aggregated table (as optlab report).",
                              **with_examples(("optlab rerun outputs/sweeps/lr_wd", "the best configuration, 5 fresh seeds"),
                                              ("optlab rerun outputs/sweeps/lr_wd --top 3 --seeds 10",
                                               "the best 3, 10 fresh seeds each")))
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a sweep folder (outputs/sweeps/<study>)")
    p.add_argument("--top", type=int, default=1, help="configurations to rerun, best first (default 1)")
    p.add_argument("--seeds", type=int, default=5, help="fresh seeds per configuration (default 5)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from optlab.config.compose import compose
    from optlab.runs.files import make_dirs
    from optlab.training.api import train_many

    if args.top < 1 or args.seeds < 1:
        raise ConfigError(f"--top {args.top} --seeds {args.seeds}: both must be >= 1")
    sweep_dir = Path(args.sweep_dir)
    spec, rows = read_sweep(sweep_dir)
    if spec.scheduler == "pbt":  # a member's trial params are only where it started
        raise ConfigError(f"{sweep_dir}: a PBT sweep's members changed their values while they trained; train the best "
                          f"member's schedule again with: optlab train --replay {sweep_dir / 'best_schedule.yaml'}")
    configurations = best_configurations(spec, rows, args.top)
    first_fresh = int(compose(spec.base, spec.config_dir).trainer.seed) + spec.seeds
    seeds = range(first_fresh, first_fresh + args.seeds)
    rerun_dir = make_dirs(sweep_dir / "rerun")
    requests = [r for number, overrides in configurations for seed in seeds
                if (r := fresh_run(spec, number, overrides, seed, rerun_dir)) is not None]
    train_many(requests, run_root=rerun_dir)
    return report(rerun_dir, spec)


def read_sweep(sweep_dir: Path):
    from optlab.sweep.build import recorded_spec
    from optlab.sweep.outputs import read_trial_rows

    return recorded_spec(sweep_dir), read_trial_rows(sweep_dir)


def best_configurations(spec, rows: list[dict], top: int) -> list[tuple[int, list[str]]]:
    """(trial number, overrides) of the best completed trials, best first."""
    from optlab.sweep.outputs import assignment_of_row, best_rows
    from optlab.sweep.space import to_overrides

    best = best_rows(rows, spec.direction, top)
    if not best:
        raise ConfigError("optlab rerun: the sweep has no completed trial yet")
    return [(int(r["number"]), [*spec.base, *to_overrides(spec.space, assignment_of_row(spec.space, r))])
            for r in best]


def fresh_run(spec, number: int, overrides: list[str], seed: int, rerun_dir: Path):
    """The run of this trial's configuration with this seed, unless a completed one is there already."""
    from optlab.config.compose import compose
    from optlab.training.api import RunRequest

    name = f"trial{number:04d}-seed{seed}"
    if any(_completed(run) for run in rerun_dir.glob(f"*-{name}")):
        print(f"rerun: {name} done already", file=sys.stderr)
        return None
    cfg = compose([*overrides, f"trainer.seed={seed}", f"trainer.name={name}"], spec.config_dir)

    def started(run_dir: Path) -> None:
        print(f"rerun: trial {number}, seed {seed}: {' '.join(overrides)}", file=sys.stderr)

    return RunRequest(cfg, on_start=started, on_end=_ended)


def _ended(result) -> None:
    """A diverged seed is a result (the table counts it): its reason, and the folder on stdout."""
    if result.error is not None:
        print_error_line(str(result.error))
    print(result.run_dir)


def _completed(run: Path) -> bool:
    try:
        return json.loads((run / "summary.json").read_text()).get("status") == "completed"
    except (OSError, json.JSONDecodeError):
        return False


def report(rerun_dir: Path, spec) -> int:
    """The seed-aggregated table of the reruns, as `optlab report` shows it."""
    from optlab.cli.app import build_parser

    args = build_parser().parse_args(["report", str(rerun_dir), "--metric", spec.metric, "--at", spec.at,
                                      "--no-plots"])
    return args.handler(args)
