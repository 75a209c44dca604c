"""`optlab compare FILE|NAME [--quick] [--population K] [--jobs N] [--out DIR] [--heartbeat S]
[--grace S]`: contenders tuned alike on several workloads; the score table on stderr, the
comparison's folder on stdout."""
from __future__ import annotations

import sys
from pathlib import Path

from optlab.cli.display import with_examples
from optlab.cli.sweep import add_liveness_flags, liveness
from optlab.errors import ConfigError


def register(subparsers) -> None:
    from optlab.compare.spec import comparison_names

    p = subparsers.add_parser(
        "compare", help="compare optimizers (or any technique) fairly on several workloads",
        description="Tune every contender alike (AlgoPerf's studies of quasirandom trials, or their defaults) on "
                    "every workload, rerun each chosen setting with fresh seeds (DeepOBS), and write performance "
                    "profiles, an AlgoPerf-style score with a bootstrap interval and pairwise Welch verdicts to "
                    f"outputs/comparisons/NAME/. Built in: {', '.join(comparison_names())}.",
        **with_examples(("optlab compare lecture_optimizers --quick", "a pipeline check in under a minute"),
                        ("optlab compare lecture_optimizers", "8 optimizers tuned alike on 4 workloads"),
                        ("optlab compare my_comparison.yaml --population 5", "your own file, 5 runs at once")))
    p.add_argument("comparison", metavar="FILE|NAME", help="a comparison YAML file, or a built-in comparison's name")
    p.add_argument("--quick", action="store_true", help="the file's `quick` settings: checks the pipeline, never a "
                                                        "result (outputs/comparisons/quick/NAME)")
    p.add_argument("--population", metavar="K|auto", help="train up to K runs of a sweep at once as one population")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes per sweep (default: 1, in this process)")
    p.add_argument("--out", metavar="DIR", default="outputs/comparisons", help="where comparison folders go")
    add_liveness_flags(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from optlab.cli.train import population_size
    from optlab.compare.run import CompareOptions, run_comparison
    from optlab.compare.spec import load_comparison
    from optlab.sweep.run import RunOptions

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: must be >= 1")
    sweeps = RunOptions(**liveness(args))
    spec = load_comparison(args.comparison)
    options = CompareOptions(quick=args.quick, population=population_size(args.population), jobs=args.jobs,
                             out_root=Path(args.out), sweeps=sweeps)
    result = run_comparison(spec, options)
    _print_scores(result.summary)
    print(result.summary["folder"], flush=True)
    return 0


def _print_scores(summary: dict) -> None:
    quick = " (quick: a pipeline check, not a result)" if summary["quick"] else ""
    print(f"{summary['comparison']}{quick}: {summary['runs']} runs in {summary['wall_time_s']:.0f} s; "
          f"budget parity {'holds' if summary['parity'] else 'BROKEN'}", file=sys.stderr)
    for row in summary["scores"]:
        print(f"  {row['contender']:14s} score {row['score']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]",
              file=sys.stderr)
