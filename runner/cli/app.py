"""The `optlab` command: sub-commands, argument parsing, and error -> exit code mapping.

Exit codes: 0 done, 1 unexpected error, 2 bad config or usage, 3 bad data or checkpoint,
4 training failed (diverged, out of memory), 5 the machine refused a write (disk full,
read-only), 130 SIGINT, 143 SIGTERM. Each sub-command's module has register(subparsers),
which adds its parser and sets `handler` (args -> exit code).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import traceback

from optlab import faults
from optlab.cli import eval as evaluate
from optlab.cli import compare, listing, lrfind, report, rerun, study, sweep, train
from optlab.cli.display import debug, report_error
from optlab.errors import ConfigError, OptlabError, choose_from, storage_error


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
        raise ConfigError(f"{explain(message)} (see `{self.prog} --help`)")


def explain(message: str) -> str:
    """argparse's complaint in optlab's words, the closest valid choice first: `argument
    COMMAND: invalid choice: 'trian' (choose from ...)` -> `trian: unknown command; did you
    mean train? choose from: ...`."""
    match = re.fullmatch(r"argument (\S+): invalid choice: '?(.*?)'? \(choose from (.*)\)", message)
    if not match:
        return message
    name, value, listed = match.groups()
    choices = [c.strip(" '") for c in listed.split(",")]
    what = "unknown command" if name in ("COMMAND", "ACTION") else f"{name} {value}"
    return f"{value}: {what}; {choose_from(value, choices)}" if what.startswith("unknown") else \
        f"{what}: {choose_from(value, choices)}"


def unknown_flags(parser: Parser, args, extras: list[str]) -> ConfigError:
    """Arguments no parser took (`optlab report --outt`): the first, named with the closest
    flag of its command."""
    command = parser
    for dest in ("command", "study_command"):
        chosen = getattr(args, dest, None)
        sub = next((a for a in command._actions if isinstance(a, argparse._SubParsersAction)), None)
        if chosen is None or sub is None or chosen not in sub.choices:
            break
        command = sub.choices[chosen]
    flags = sorted(f for f in command._option_string_actions if f.startswith("--"))
    bad = extras[0]
    what = "unknown flag" if bad.startswith("-") else "unexpected argument"
    return ConfigError(f"{bad}: {what} of {command.prog}; {choose_from(bad.split('=')[0], flags)} "
                       f"(see `{command.prog} --help`)")


def build_parser() -> Parser:
    from optlab import __version__

    parser = Parser(prog="optlab", description="A command-line lab for studying how neural networks train.")
    parser.add_argument("--version", action="version", version=f"optlab {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    for command in (train, evaluate, sweep, rerun, report, lrfind, listing, study, compare):
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        try:
            args, extras = parser.parse_known_args(argv)
        except SystemExit as done:  # --help, --version: argparse printed them
            return int(done.code or 0)
        if extras:
            raise unknown_flags(parser, args, extras)
        if args.command is None:
            parser.print_help()
            return 2
        faults.plan()  # a fault-injection plan that does not parse stops the command here (exit 2)
        return args.handler(args)
    except OptlabError as exc:
        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        report_error(KeyboardInterrupt("interrupted"))
        return 130
    except BrokenPipeError:  # `optlab list | head`: the reader left; say nothing, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # the machine refusing a write, else a bug: one line unless OPTLAB_DEBUG=1
        fault = storage_error(exc)
        if fault is not None:
            report_error(fault)
            return fault.exit_code
        if debug():
            traceback.print_exception(exc)
        print(f"optlab: unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())} "
              f"(set OPTLAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def console_main() -> int:
    """The `optlab` console script: main(), then the interpreter's shutdown with Ctrl-C back
    to plain termination, so a Ctrl-C that lands in an exit handler prints no traceback."""
    import atexit
    import signal

    code = main()
    atexit.register(faults.hit, "cli.shutdown")  # runs first among exit handlers; a no-op unless armed
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return code
