"""TensorBoard event files in the run folder's tb/ (trainer.tensorboard=true).

Once per epoch, at its end: every number of the metrics.csv row as a scalar named after its
column (val_acc, lr, grad_norm, ...), at step = the epoch (counted from 0, as in metrics.csv).
On the epochs diagnostics records (trainer.diagnostics=true), also histograms of every
layer's weights and their gradients after the epoch's last step, and of every block's
output on that step's batch. torch's SummaryWriter writes on its own thread; nothing is
written inside an epoch.

A resume opens a new event file beside the old ones. Events of epochs the resume computes
again (written after the last checkpoint by a run killed hard) are first dropped from the
old files, so every epoch has one value per tag. tensorboard is an optional extra: without
it, trainer.tensorboard=true exits 2 naming the install command.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from optlab.errors import ConfigError
from optlab.runs.files import make_dirs, write_atomic

FOLDER = "tb"
INSTALL = "pip install 'optlab[tensorboard]'"


def summary_writer_class():
    """torch's SummaryWriter; ConfigError with the install command when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(f"trainer.tensorboard=true needs the tensorboard package: {INSTALL}") from None
    return SummaryWriter


def require(trainer_cfg: dict) -> None:
    """Fail before anything is built when the key asks for a package that is not there."""
    if trainer_cfg.get("tensorboard", False):
        summary_writer_class()


class TensorBoard:
    """The run's event writer, or nothing when trainer.tensorboard is off."""

    def __init__(self, run_dir: Path, enabled: bool, first_epoch: int = 0):
        self.writer = None
        if enabled:
            folder = make_dirs(run_dir / FOLDER)
            drop_events_from(folder, first_epoch)
            self.writer = summary_writer_class()(log_dir=str(folder))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()

    def end_epoch(self, row: dict, model: torch.nn.Module, outputs: dict[str, torch.Tensor] | None) -> None:
        """The row's numbers; histograms when diagnostics recorded a step (its block outputs)."""
        if self.writer is None:
            return
        epoch = int(row["epoch"])
        for column, value in row.items():
            if column != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(column, value, epoch)
        if outputs is not None:
            self.histograms(model, outputs, epoch)

    def histograms(self, model: torch.nn.Module, outputs: dict[str, torch.Tensor], epoch: int) -> None:
        """Each layer's weights (parameters with two or more dimensions), their gradients, and
        each block's output."""
        for name, param in model.named_parameters():
            if param.dim() < 2:
                continue
            self.writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), epoch)
            if param.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", param.grad.detach().float().cpu(), epoch)
        for name, output in outputs.items():
            self.writer.add_histogram(f"activations/{name}", output.cpu(), epoch)


def drop_events_from(folder: Path, first_epoch: int) -> None:
    """Rewrite (atomically) any event file holding events at steps >= first_epoch without them."""
    from tensorboard.backend.event_processing.event_file_loader import (
        RawEventFileLoader,
    )
    from tensorboard.compat.proto.event_pb2 import Event

    for path in sorted(folder.glob("events.out.tfevents.*")):
        events = [Event.FromString(raw) for raw in RawEventFileLoader(str(path)).Load()]
        kept = [e for e in events if not e.HasField("summary") or e.step < first_epoch]
        if len(kept) < len(events):
            write_atomic(path, records(kept))


def records(events: list) -> bytes:
    """Events as TFRecords, the framing event files use."""
    import io

    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    return buffer.getvalue()
