"""`optlab train`: one run, a resume, or a grid of runs with -m."""
from __future__ import annotations

import sys
from pathlib import Path

from optlab.cli.display import report_error, with_examples
from optlab.errors import ConfigError, Interrupted, OptlabError, print_error_line, resume_hint
from optlab.runs.status import Status


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="run one training run (Hydra overrides: group=option key=value)",
        description="Run one training run, configured by Hydra overrides (group=option, group.key=value). "
                    "`optlab list` shows every group's options, `optlab list GROUP` their keys and defaults. "
                    "The last stdout line is the run folder.",
        **with_examples(("optlab train model=mlp optimizer=adam optimizer.lr=3e-4", "one run"),
                        ("optlab train --resume outputs/runs/RUN", "continue an interrupted run"),
                        ("optlab train -m optimizer=sgd,adam trainer.seed=0,1,2", "every combination, one after another")))
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=cnn optimizer.lr=0.01")
    train.add_argument("--cfg", action="store_true",
                       help="print the composed config and exit (Hydra's `--cfg job` and `--cfg all` too; "
                            "with -m, every combination's)")
    train.add_argument("--resume", metavar="RUN_FOLDER",
                       help="continue an interrupted run; with trainer.epochs=M, extend a completed one to M epochs; "
                            "it takes overrides of how it runs only (trainer.progress, trainer.threads, ...)")
    train.add_argument("--config-dir", metavar="DIR", help="extra config folder whose groups extend/override the built-in ones")
    train.add_argument("-m", "--multirun", action="store_true", help="run every combination of comma-separated values")
    train.add_argument("--replay", metavar="SCHEDULE",
                       help="train from scratch under a schedule file's hyper-parameters (a PBT sweep's "
                            "best_schedule.yaml): its base and values, trainer.replay=SCHEDULE; overrides go after them")
    train.add_argument("--population", metavar="K|auto",
                       help="with -m: train up to K runs of one structure at once as one vectorized population "
                            "(auto: the K whose step is fastest per member, measured at the start)")
    train.set_defaults(handler=run_train)


def run_train(args) -> int:
    from rich.console import Console

    from optlab.config.compose import compose, to_yaml

    show_config = _cfg_requested(args)
    if args.resume:
        return _resume(Path(args.resume), args.overrides)
    if args.population is not None and not args.multirun:
        raise ConfigError("--population packs the runs of a grid: use it with -m (optlab train -m ... --population K)")
    if args.replay:
        from optlab.training.replay import replay_overrides

        if args.multirun:
            raise ConfigError("--replay trains one run: leave -m out")
        args.overrides = [*replay_overrides(args.replay), *args.overrides]
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


# What --resume takes besides trainer.epochs=M (an extension): keys that change how this
# invocation runs, not what the run learns; config.yaml keeps the run's own values.
RESUME_KEYS = ("trainer.progress", "trainer.threads", "trainer.device", "trainer.tensorboard",
               "trainer.checkpoint_every_s", "trainer.log_every")


def _resume(run_dir: Path, overrides: list[str]) -> int:
    from optlab.config.compose import load_run_config
    from optlab.runs.files import read_json
    from optlab.training.extend import extend_run, requested_epochs

    cfg = load_run_config(run_dir)
    previous = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
    extension = [o for o in overrides if o.split("=", 1)[0].lstrip("+") == "trainer.epochs"]
    _apply_resume_overrides(cfg, [o for o in overrides if o not in extension], previous)
    if extension:
        return _train_and_report(extend_run(run_dir, cfg, previous, requested_epochs(extension)), resume_dir=run_dir)
    if previous.get("status") == Status.COMPLETED:
        print(f"{run_dir}: already completed", file=sys.stderr)
        print(run_dir)
        return 0
    return _train_and_report(cfg, resume_dir=run_dir)


def _apply_resume_overrides(cfg, overrides: list[str], previous: dict) -> None:
    """RESUME_KEYS' overrides applied to the resumed run's config for this invocation; any
    other key exits 2 naming it, and so does a device of another kind (the checkpoint's
    generator states are the kind's own)."""
    from omegaconf import OmegaConf

    from optlab.config.compose import parse_overrides
    from optlab.config.validate import validate

    for o in parse_overrides(overrides):
        if o.key_or_group not in RESUME_KEYS:
            raise ConfigError(f"{o.input_line}: --resume continues the run with its saved config.yaml and cannot "
                              f"change what it learns; give only trainer.epochs=M (to extend it) or "
                              f"{', '.join(RESUME_KEYS)}")
        OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
        if o.key_or_group == "trainer.device":
            _check_same_kind_of_device(str(o.value()), str(previous.get("device") or "cpu"))
    validate(cfg, strict=False)


def _check_same_kind_of_device(asked: str, ran_on: str) -> None:
    from optlab.training.build import resolve_device

    if resolve_device(asked).type != ran_on.split(":")[0]:
        raise ConfigError(f"trainer.device={asked}: the run trained on {ran_on}; a resume keeps the kind of device "
                          f"(its checkpoint's random generators are {ran_on.split(':')[0]} ones)")


def population_size(text: str | None) -> int | str | None:
    """--population K (an integer >= 1) or auto (K measured: optlab.training.grouping.auto_size);
    None without the flag."""
    from optlab.training.grouping import population_setting

    return population_setting(text)


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
    from optlab.training.api import train

    try:
        result = train(cfg, resume_dir=resume_dir)
    except OptlabError as exc:
        if exc.result is not None:  # the run folder exists: its path stays the last stdout line
            report_error(exc.going_on(resume_hint(exc.result.run_dir)) if isinstance(exc, Interrupted) else exc)
            print(exc.result.run_dir)
            return exc.exit_code
        raise
    if result.error is not None:  # diverged or failed: the reason, the run folder, the exit code
        report_error(result.error)
        print(result.run_dir)
        return result.error.exit_code
    if cfg.trainer.progress:
        Console().print(summary_table(result.summary))
    print(result.run_dir)
    if result.late_signal is not None:  # the run is complete: only the exit code tells of the signal
        import signal

        print_error_line(f"{signal.Signals(result.late_signal).name} arrived after training ended; "
                         f"the run is complete (summary.json says so)")
        return 128 + result.late_signal
    return 0
