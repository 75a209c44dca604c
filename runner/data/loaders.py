"""The training split's batches: index slices of on-device data, or host batches streamed to
the device, in an order drawn on the training device either way."""
from __future__ import annotations

import math
from typing import Iterator

import torch

from optlab.data._base import Dataset
from optlab.data.curriculum import Pacing


class _Batches:
    """One pass over the training split per epoch, in the order of a permutation drawn from
    the loader's own generator (restored on resume, so the batch order is too). The
    generator lives on the training device for both loaders, so the batch order, and with
    it every metric, does not depend on where the data is kept. With a curriculum's pacing
    an epoch is one pass over that epoch's pool of admitted examples, in a permutation of
    the pool drawn from the same generator (data/curriculum.py)."""

    x: torch.Tensor
    generator: torch.Generator
    pacing: Pacing | None = None

    def permutation(self) -> torch.Tensor:
        return torch.randperm(len(self.x), generator=self.generator, device=self.generator.device)

    def order(self, epoch: int) -> torch.Tensor:
        """The example indices of epoch `epoch`, in the order they are trained on."""
        if self.pacing is None:
            return self.permutation()
        pool = self.pacing.pool(epoch).to(self.generator.device)
        return pool[torch.randperm(len(pool), generator=self.generator, device=self.generator.device)]

    def __len__(self) -> int:
        return len(self.x)

    def size(self, epoch: int) -> int:
        """How many examples epoch `epoch` trains on."""
        return len(self.x) if self.pacing is None else self.pacing.size(epoch)

    def num_batches(self, batch_size: int, epoch: int = 0) -> int:
        return math.ceil(self.size(epoch) / batch_size)


class DeviceBatches(_Batches):
    """Mini-batches as index slices of an on-device random permutation: the data stays
    where it is (the training device); only the permutation is drawn."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        self.x, self.y, self.generator = x, y, generator

    def epoch(self, batch_size: int, skip: int = 0, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch `epoch`'s batches, leaving out the first `skip` (done before a resume)."""
        perm = self.order(epoch).to(self.x.device)
        for start in range(skip * batch_size, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)  # faster than x[idx] on CPU


class StreamingBatches(_Batches):
    """Mini-batches gathered on the host and copied to the device step by step, for data
    that does not fit in device memory.

    The data stays in host memory; each epoch draws its permutation on the training device
    (as DeviceBatches does) and copies it to the host once; each step gathers its rows into
    a pinned buffer (CUDA) and copies it with non_blocking=True, so the copy overlaps the
    GPU's previous step.
    PyTorch's pinned-memory cache reuses a buffer only once its copy has finished.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, device: torch.device):
        self.x, self.y, self.generator, self.device = x, y, generator, device
        self.pin = device.type == "cuda"

    def epoch(self, batch_size: int, skip: int = 0, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = self.order(epoch).cpu()
        for start in range(skip * batch_size, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            yield self.copy_rows(self.x, idx), self.copy_rows(self.y, idx)

    def copy_rows(self, source: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        channels_last = source.dim() == 4 and not source.is_contiguous() and \
            source.is_contiguous(memory_format=torch.channels_last)
        rows = torch.empty((len(idx), *source.shape[1:]), dtype=source.dtype, pin_memory=self.pin,
                           memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        torch.index_select(source, 0, idx, out=rows)
        return rows.to(self.device, non_blocking=self.pin)


DEVICE_MEMORY_FRACTION = 0.5  # auto keeps the data on the device when it takes at most this much of the free memory


def data_fits(nbytes: int, free_bytes: int, fraction: float = DEVICE_MEMORY_FRACTION) -> bool:
    return nbytes <= fraction * free_bytes


def keep_data_on_device(setting: str | bool, data: Dataset, device: torch.device) -> bool:
    """trainer.data_on_device: true/false as asked; auto: on a CPU always (the data is there
    already), on CUDA when the dataset takes at most DEVICE_MEMORY_FRACTION of free memory."""
    if str(setting).lower() in ("true", "false"):
        return str(setting).lower() == "true"
    if device.type != "cuda":
        return True
    nbytes = sum(v.nbytes for v in vars(data).values() if isinstance(v, torch.Tensor))
    free_bytes, _ = torch.cuda.mem_get_info(device)
    return data_fits(nbytes, free_bytes)
