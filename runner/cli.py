"""The `optlab` command: sub-commands, argument parsing, and error -> exit code mapping.

Exit codes: 0 done, 1 unexpected error, 2 bad config or usage, 3 bad data or checkpoint,
4 training failed (diverged, out of memory), 130 SIGINT, 143 SIGTERM.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from runner.errors import ConfigError, OptlabError, print_error_line, storage_error

class Parser(argparse.ArgumentParser):
    """argparse that raises a one-line ConfigError instead of printing usage and exiting, and
    lets a sub-command's flags and Hydra overrides come in any order
    (`optlab train model=cnn --cfg optimizer=adam`)."""

    _mixing = False

    def parse_known_args(self, args=None, namespace=None):
        # intermixed parsing calls parse_known_args itself, and cannot handle sub-commands
        if self._mixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> Parser:
    from runner import __version__

    parser = Parser(prog="optlab", description="A command-line lab for studying how neural networks train.")
    parser.add_argument("--version", action="version", version=f"optlab {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    train = sub.add_parser("train", help="run one training run (Hydra overrides: group=option key=value)",
                           description="Run one training run. Example: optlab train model=mlp optimizer=adam optimizer.lr=3e-4")
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=cnn optimizer.lr=0.01")
    train.add_argument("--cfg", action="store_true",
                       help="print the composed config and exit (Hydra's `--cfg job` and `--cfg all` too; "
                            "with -m, every combination's)")
    train.add_argument("--resume", metavar="RUN_FOLDER", help="continue an interrupted run")
    train.add_argument("--config-dir", metavar="DIR", help="extra config folder whose groups extend/override the built-in ones")
    train.add_argument("-m", "--multirun", action="store_true", help="run every combination of comma-separated values")
    train.set_defaults(handler=run_train)

    for name, register in _subcommand_registrars():
        register(sub)
    return parser


def _subcommand_registrars():
    """Sub-commands that live in their own modules: each has register(subparsers), which
    adds its parser and sets `handler` (args -> exit code) with set_defaults."""
    found = []
    for module_name in ("runner.sweep_cli", "runner.rerun_cli", "runner.report_cli", "runner.lrfind_cli",
                        "runner.list_cli"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        found.append((module_name, module.register))
    return found


def run_train(args) -> int:
    from runner.config import compose, load_run_config, to_yaml
    from rich.console import Console

    show_config = _cfg_requested(args)
    if args.resume:
        if args.overrides:
            raise ConfigError("--resume takes no overrides: the run continues with its saved config.yaml")
        from runner.metrics import read_json
        run_dir = Path(args.resume)
        cfg = load_run_config(run_dir)
        previous = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
        if previous.get("status") == "completed":
            print(f"{run_dir}: already completed", file=sys.stderr)
            print(run_dir)
            return 0
        return _train_and_report(cfg, resume_dir=run_dir)
    if args.multirun:
        from runner.multirun import run_grid, show_grid
        return (show_grid if show_config else run_grid)(args.overrides, args.config_dir)
    cfg = compose(args.overrides, args.config_dir)
    if show_config:
        Console().print(to_yaml(cfg), markup=False, highlight=False, end="")
        return 0
    return _train_and_report(cfg)


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
    from runner.progress import summary_table
    from runner.train import train
    from rich.console import Console

    try:
        result = train(cfg, resume_dir=resume_dir)
    except OptlabError as exc:
        if exc.result is not None:  # the run folder exists: its path stays the last stdout line
            _report_error(exc)
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


def _report_error(exc: BaseException) -> None:
    if _debug():
        traceback.print_exception(exc)
    print_error_line(str(exc))


def _debug() -> bool:
    return os.environ.get("OPTLAB_DEBUG", "") not in ("", "0", "false", "no")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return args.handler(args)
    except OptlabError as exc:
        _report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        _report_error(KeyboardInterrupt("interrupted"))
        return 130
    except BrokenPipeError:  # `optlab list | head`: the reader left; say nothing, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # the machine refusing a write, else a bug: one line unless OPTLAB_DEBUG=1
        fault = storage_error(exc)
        if fault is not None:
            _report_error(fault)
            return fault.exit_code
        if _debug():
            traceback.print_exception(exc)
        print(f"optlab: unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())} "
              f"(set OPTLAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def console_main() -> int:
    """The `optlab` console script: main(), then the interpreter's shutdown with Ctrl-C back
    to plain termination, so a Ctrl-C that lands in an exit handler prints no traceback."""
    import atexit
    import signal

    from runner import faults

    code = main()
    atexit.register(faults.hit, "cli.shutdown")  # runs first among exit handlers; a no-op unless armed
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return code
