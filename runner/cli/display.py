"""What the terminal shows: tables that fit it (uncut when piped), stderr, the end-of-run table."""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from rich.console import Console
from rich.table import Table

from optlab.errors import print_error_line

PIPE_WIDTH = 100_000  # piped or redirected: no width to fit, so tables keep their natural width


class HelpFormatter(argparse.HelpFormatter):
    """--help: the description wrapped to the terminal, the examples kept line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def with_examples(*examples: tuple[str, str]) -> dict:
    """add_parser's keywords for a command's --help examples: (command, what it does) pairs."""
    width = max(len(command) for command, _ in examples)
    lines = [f"  {command:<{width}}  {what}" for command, what in examples]
    return {"epilog": "\n".join(["examples:", *lines]), "formatter_class": HelpFormatter}


def stderr_console() -> Console:
    return Console(file=sys.stderr)


def print_table(renderable, file=None) -> None:
    """To a real terminal at its width; to a file or pipe uncut (rich would otherwise squeeze
    a table into 80 columns, folding cells into `compl…`)."""
    console = Console(file=file)
    (console if console.is_terminal else Console(file=file, width=PIPE_WIDTH)).print(renderable)


def summary_table(summary: dict) -> Table:
    table = Table(title=f"run {summary.get('status', '?')}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("status", "reason", "epochs_done", "best_val_acc", "final_val_acc", "final_val_loss",
                "final_train_loss", "best_epoch", "test_acc", "test_loss", "wall_time_s", "device", "seed"):
        value = summary.get(key)
        if value is None and key in ("reason", "best_epoch", "test_acc", "test_loss"):
            continue  # shown only when the run has one
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def report_error(exc: BaseException) -> None:
    if debug():
        traceback.print_exception(exc)
    print_error_line(str(exc))


def debug() -> bool:
    return os.environ.get("OPTLAB_DEBUG", "") not in ("", "0", "false", "no")
