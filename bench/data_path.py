"""Batches per second of optlab's loaders against DataLoader(TensorDataset(...)).

Random float32 tensors shaped like MNIST (60000x1x28x28) and CIFAR-10 (50000x3x32x32),
int64 labels, shuffled batches of 128. DeviceBatches holds the data on the device and
slices an on-device permutation; StreamingBatches gathers on the host and copies each
batch; DataLoader(TensorDataset) indexes one sample at a time and collates (on CUDA with
pin_memory=True and non_blocking copies, the usual recipe). Each measurement reads up to
--batches batches; loaders alternate for --repeats rounds and the medians are printed.

    python bench/data_path.py                    # CPU
    python bench/data_path.py --device cuda      # the same on a GPU
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Iterable

import torch
from torch.utils.data import DataLoader, TensorDataset

from optlab.data.loaders import DeviceBatches, StreamingBatches

SHAPES = {"mnist": (60000, 1, 28, 28), "cifar": (50000, 3, 32, 32)}


def batches_per_s(make_epoch: Callable[[], Iterable], device: torch.device, limit: int) -> float:
    start = time.perf_counter()
    count = 0
    for xb, yb in make_epoch():
        xb = xb.to(device, non_blocking=True)  # a no-op for loaders that already deliver on the device
        count += 1
        if count == limit:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - start)


def loaders(x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int) -> dict[str, Callable]:
    on_device = DeviceBatches(x.to(device), y.to(device), torch.Generator(device=device).manual_seed(0))
    streamed = StreamingBatches(x, y, torch.Generator().manual_seed(0), device)
    data_loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True,
                             pin_memory=device.type == "cuda")
    return {
        "DeviceBatches": lambda: on_device.epoch(batch),
        "StreamingBatches": lambda: streamed.epoch(batch),
        "DataLoader(TensorDataset)": lambda: iter(data_loader),
    }


def bench_shape(name: str, device: torch.device, batch: int, limit: int, repeats: int) -> dict[str, float]:
    shape = SHAPES[name]
    x = torch.rand(shape)
    y = torch.randint(0, 10, (shape[0],))
    candidates = loaders(x, y, device, batch)
    for make_epoch in candidates.values():  # warm-up
        batches_per_s(make_epoch, device, 5)
    rates: dict[str, list[float]] = {k: [] for k in candidates}
    for i in range(repeats):
        names = list(candidates) if i % 2 == 0 else list(reversed(candidates))
        for key in names:
            rates[key].append(batches_per_s(candidates[key], device, limit))
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=200, help="batches read per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for both loaders (default: torch's own default, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch_size} "
          f"batches/measurement={args.batches} repeats={args.repeats} torch={torch.__version__}")
    print(f"{'data':<8} {'loader':<27} {'batches/s':>10} {'vs DataLoader':>14}")
    for name in SHAPES:
        rates = bench_shape(name, device, args.batch_size, args.batches, args.repeats)
        baseline = rates["DataLoader(TensorDataset)"]
        for loader, rate in rates.items():
            print(f"{name:<8} {loader:<27} {rate:>10.0f} {rate / baseline:>13.1f}x", flush=True)


if __name__ == "__main__":
    main()
