"""`optlab train`: one run, a resume, or a grid of runs with -m."""
from __future__ import annotations

import sys
from pathlib import Path

from optlab.cli.display import report_error
from optlab.errors import ConfigError, OptlabError, print_error_line
from optlab.runs.status import Status


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="run one training run (Hydra overrides: group=option key=value)",
                           description="Run one training run. Example: optlab train model=mlp optimizer=adam optimizer.lr=3e-4")
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=cnn optimizer.lr=0.01")
    train.add_argument("--cfg", action="store_true",
                       help="print the composed config and exit (Hydra's `--cfg job` and `--cfg all` too; "
                            "with -m, every combination's)")
    train.add_argument("--resume", metavar="RUN_FOLDER",
                       help="continue an interrupted run; with trainer.epochs=M, extend a completed one to M epochs")
    train.add_argument("--config-dir", metavar="DIR", help="extra config folder whose groups extend/override the built-in ones")
    train.add_argument("-m", "--multirun", action="store_true", help="run every combination of comma-separated values")
    train.add_argument("--population", metavar="K|auto",
                       help="with -m: train up to K runs of one structure at once as one vectorized population "
                            "(auto: 16 on a CPU, what fits on a GPU)")
    train.set_defaults(handler=run_train)


def run_train(args) -> int:
    from rich.console import Console

    from optlab.config.compose import compose, load_run_config, to_yaml

    show_config = _cfg_requested(args)
    if args.resume:
        from optlab.runs.files import read_json
        from optlab.training.extend import extend_run, requested_epochs

        epochs = requested_epochs(args.overrides) if args.overrides else None  # --resume RUN trainer.epochs=M
        run_dir = Path(args.resume)
        cfg = load_run_config(run_dir)
        previous = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
        if epochs is not None:
            return _train_and_report(extend_run(run_dir, cfg, previous, epochs), resume_dir=run_dir)
        if previous.get("status") == Status.COMPLETED:
            print(f"{run_dir}: already completed", file=sys.stderr)
            print(run_dir)
            return 0
        return _train_and_report(cfg, resume_dir=run_dir)
    if args.population is not None and not args.multirun:
        raise ConfigError("--population packs the runs of a grid: use it with -m (optlab train -m ... --population K)")
    if args.multirun:
        from optlab.sweep.multirun import run_grid, show_grid
        if show_config:
            return show_grid(args.overrides, args.config_dir)
        return run_grid(args.overrides, args.config_dir, population_size(args.population))
    cfg = compose(args.overrides, args.config_dir, import_targets=not show_config)
    if show_config:
        Console().print(to_yaml(cfg), markup=False, highlight=False, end="")
        return 0
    return _train_and_report(cfg)


def population_size(text: str | None) -> int | None:
    """--population K (an integer >= 1) or auto; None without the flag."""
    if text is None:
        return None
    if text == "auto":
        from optlab.training.population import AUTO_SIZE

        return AUTO_SIZE
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--population {text}: give a number of runs >= 1, or auto")
    return int(text)


CFG_KINDS = ("job", "all")  # Hydra's --cfg values; optlab has no hydra config, so both print the same


def _cfg_requested(args) -> bool:
    """Whether --cfg was given. Hydra spells it `--cfg job|all|hydra`; here --cfg takes no
    value (one would swallow the override after a bare --cfg), so the word, if any, arrives
    as the first override without '='."""
    if not args.cfg:
        return False
    words = [o for o in args.overrides if "=" not in o and not o.lstrip().startswith("~")]
    if words:
        if words[0] == "hydra":
            raise ConfigError("--cfg hydra: optlab has no hydra config (it does not use Hydra's job settings; "
                              "trainer.out_dir and trainer.name place runs); --cfg job or --cfg all print the config")
        if words[0] not in CFG_KINDS:
            raise ConfigError(f"--cfg {words[0]}: choose from: {', '.join(CFG_KINDS)} (or --cfg alone)")
        args.overrides.remove(words[0])
    return True


def _train_and_report(cfg, resume_dir=None) -> int:
    from rich.console import Console

    from optlab.cli.display import summary_table
    from optlab.training.loop import train

    try:
        result = train(cfg, resume_dir=resume_dir)
    except OptlabError as exc:
        if exc.result is not None:  # the run folder exists: its path stays the last stdout line
            report_error(exc)
            print(exc.result.run_dir)
            return exc.exit_code
        raise
    if cfg.trainer.progress:
        Console().print(summary_table(result.summary))
    print(result.run_dir)
    if result.late_signal is not None:  # the run is complete: only the exit code tells of the signal
        import signal

        print_error_line(f"{signal.Signals(result.late_signal).name} arrived after training ended; "
                         f"the run is complete (summary.json says so)")
        return 128 + result.late_signal
    return 0
