"""When checkpoints are written: at an epoch's end once a time interval has passed, and when
the run stops; on one background thread, so that the writes and fsyncs overlap training."""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from optlab.runs.files import (
    CsvAppender,
)
from optlab.runs.folder import (
    save_checkpoint,
    save_torch_file,
)
from optlab.training.best import BEST_FILE, BestWeights


class RunFolderWriter:
    """Writes checkpoints (and fsyncs the metrics rows they cover) on one background thread,
    in order, so that the fsyncs overlap the next epoch instead of stalling the loop.

    Leaving the `with` block waits until everything is on disk and re-raises a failed write.
    A checkpoint is a CPU snapshot taken when it is submitted, never the live tensors.
    """

    MAX_PENDING = 4  # writes in flight before submit waits for the oldest (bounds snapshot memory)

    def __enter__(self) -> "RunFolderWriter":
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optlab-writer")
        self.pending: list[Future] = []
        return self

    def submit(self, write: Callable, *args) -> None:
        while self.pending and (self.pending[0].done() or len(self.pending) >= self.MAX_PENDING):
            self.pending.pop(0).result()  # re-raises a failed write
        self.pending.append(self.pool.submit(write, *args))

    def drain(self) -> None:
        """Wait until everything submitted is on disk; re-raise a failed write."""
        while self.pending:
            self.pending.pop(0).result()

    def __exit__(self, exc_type, *exc) -> bool:
        self.pool.shutdown(wait=True)
        errors = [f.exception() for f in self.pending if f.exception() is not None]
        if errors and exc_type is None:
            raise errors[0]
        return False


class Checkpointer:
    """Writes checkpoint.pt at the end of an epoch once `every_s` seconds have passed since
    the last write (every_s=0: every epoch), and when the run stops. The state is copied
    off the live tensors only when a write is due, so epochs in between cost nothing; a hard
    kill loses at most every_s seconds, whose rows a resume drops and recomputes identically.
    The best epoch's weights (`best`) ride in each checkpoint, and best.pt is written beside
    it whenever they changed since the last one."""

    def __init__(self, path: Path, every_s: float, table: CsvAppender, clock: Callable[[], float] = time.monotonic,
                 best: BestWeights | None = None):
        self.path, self.every_s, self.table, self.clock, self.best = path, every_s, table, clock, best
        self.last_write = clock()
        self.written_at: tuple | None = None  # (epoch, step) of the state last written

    def due(self) -> bool:
        return self.clock() - self.last_write >= self.every_s

    def write(self, writer: RunFolderWriter, position: tuple, snapshot: Callable[[], dict]) -> None:
        """The checkpoint and the metrics rows it covers reach the disk together; a position
        already written is not written again."""
        if position == self.written_at:
            return
        state = snapshot()
        if self.best is not None:
            state["best"] = self.best.to_checkpoint()
            if self.best.unwritten:
                writer.submit(save_torch_file, self.path.with_name(BEST_FILE), state["best"])
                self.best.unwritten = False
        writer.submit(save_checkpoint, self.path, state)
        writer.submit(self.table.sync)
        self.last_write, self.written_at = self.clock(), position
