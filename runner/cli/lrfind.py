"""`optlab lr-find [overrides]`: the learning-rate range test from the command line."""
from __future__ import annotations

from pathlib import Path

from optlab.cli.display import with_examples


def register(subparsers) -> None:
    p = subparsers.add_parser("lr-find", help="learning-rate range test: suggest an lr for the configured run",
                              description="Train while the lr grows exponentially from --min to --max; "
                                          "save lr_find.csv and lr_find.png and print the suggested lr.",
                              **with_examples(("optlab lr-find optimizer=momentum", "the range test for momentum SGD"),
                                              ("optlab lr-find model=cnn data=shapes --min 1e-5 --max 1",
                                               "another model and range")))
    p.add_argument("overrides", nargs="*", help="Hydra overrides, as for `optlab train`")
    p.add_argument("--min", type=float, default=1e-6, dest="lr_min", help="first lr (default 1e-6)")
    p.add_argument("--max", type=float, default=10.0, dest="lr_max", help="last lr (default 10)")
    p.add_argument("--steps", type=int, default=200, help="steps of the test (default 200)")
    p.add_argument("--config-dir", metavar="DIR", help="extra config folder, as for `optlab train`")
    p.set_defaults(handler=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from optlab.config.compose import compose
    from optlab.errors import ConfigError
    from optlab.report import plots
    from optlab.runs.folder import new_run_dir, remove_if_empty
    from optlab.training.lrfind import write_results

    if not (0 < args.lr_min < args.lr_max):
        raise ConfigError(f"--min {args.lr_min} --max {args.lr_max}: need 0 < min < max")
    if args.steps < 10:
        raise ConfigError(f"--steps {args.steps}: need at least 10 steps")
    cfg = compose(args.overrides, args.config_dir)
    out_dir = new_run_dir(Path(cfg.trainer.out_dir) / "lr_find", cfg.trainer.name)  # a refusal fails before training
    try:
        result = _run_with_progress(cfg, args)
        write_results(result, out_dir)
        plots.save(plots.lr_range_test(result), out_dir / "lr_find.png")
    except BaseException:
        remove_if_empty(out_dir)
        raise
    table = Table(title="LR range test")
    table.add_column("suggestion")
    table.add_column("lr", justify="right")
    table.add_row("suggested (smaller of the two)", f"{result.suggested_lr:.3g}")
    table.add_row("steepest descent of the smoothed loss", f"{result.steepest_lr:.3g}")
    table.add_row("minimum smoothed loss / 10", f"{result.min_loss_lr / 10:.3g}")
    table.add_row("steps run", str(len(result.lrs)))
    Console().print(table)
    print(out_dir)
    return 0


def _run_with_progress(cfg, args):
    from rich.progress import Progress

    from optlab.cli.display import stderr_console
    from optlab.training.lrfind import run_range_test

    console = stderr_console()
    if not cfg.trainer.progress or not console.is_terminal:  # a bar piped to a file is only noise
        return run_range_test(cfg, args.lr_min, args.lr_max, args.steps)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("lr-find", total=args.steps)
        return run_range_test(cfg, args.lr_min, args.lr_max, args.steps,
                              on_step=lambda step, total: bar.update(task, completed=step))
