"""Rich progress bars for a run (epoch and batch), on stderr."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """Epoch and batch bars on stderr, so stdout keeps only tables and the run folder's path."""

    def __init__(self, enabled: bool, total_epochs: int, console: Console | None = None):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console or Console(file=sys.stderr), transient=False, disable=not enabled,
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
