"""Rich progress bars for a run (epoch and batch) and the end-of-run table."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


PIPE_WIDTH = 100_000  # piped or redirected: no width to fit, so tables keep their natural width


def stderr_console() -> Console:
    return Console(file=sys.stderr)


def print_table(renderable, file=None) -> None:
    """To a real terminal at its width; to a file or pipe uncut (rich would otherwise squeeze
    a table into 80 columns, folding cells into `compl…`)."""
    console = Console(file=file)
    (console if console.is_terminal else Console(file=file, width=PIPE_WIDTH)).print(renderable)


class TrainProgress:
    """Epoch and batch bars on stderr, so stdout keeps only tables and the run folder's path."""

    def __init__(self, enabled: bool, total_epochs: int, console: Console | None = None):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console or stderr_console(), transient=False, disable=not enabled,
        )
        self.epochs = self.progress.add_task("epochs", total=total_epochs, info="") if enabled else None
        self.batches = None

    def __enter__(self):
        if self.enabled:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.__exit__(*exc)
        return False

    def start_epoch(self, epoch: int, steps: int) -> None:
        if not self.enabled:
            return
        self.progress.update(self.epochs, completed=epoch)
        if self.batches is None:
            self.batches = self.progress.add_task("batches", total=steps, info="")
        self.progress.reset(self.batches, total=steps, description=f"epoch {epoch}", info="")

    def advance_batch(self) -> None:
        if self.enabled:
            self.progress.advance(self.batches)

    def end_epoch(self, row: dict) -> None:
        if self.enabled:
            info = f"val_loss {row['val_loss']:.4f}"
            if row.get("val_acc") is not None:
                info += f" val_acc {row['val_acc']:.4f}"
            self.progress.update(self.epochs, completed=row["epoch"] + 1, info=info)


def summary_table(summary: dict) -> Table:
    table = Table(title=f"run {summary.get('status', '?')}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("status", "epochs_done", "best_val_acc", "final_val_acc", "final_val_loss",
                "final_train_loss", "wall_time_s", "device", "seed"):
        value = summary.get(key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
