"""Cost of trainer.diagnostics=true at the default interval, against the same run without it.

The same config runs with and without per-layer diagnostics, alternating (ABBA) after one
untimed warm-up pair; each run's training throughput is measured between the end of its
first epoch and the end of its last, and the overhead is 1 - median(with / without).
Target: under 5% at the default interval (diagnostics.every=1).

    python bench/diagnostics_overhead.py
    python bench/diagnostics_overhead.py --repeats 7 -- model.depth=20 model.width=64 activation=tanh
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from optlab.config.compose import compose
from optlab.training.api import train

BASE = ["trainer.progress=false", "trainer.epochs=8", "model=mlp", "model.depth=8", "model.width=128"]


def throughput(overrides: list[str], out: Path) -> float:
    ends: list[float] = []
    samples: list[float] = []

    def on_epoch(epoch: int, row: dict) -> None:
        ends.append(time.perf_counter())
        samples.append(row["step"])

    train(compose([*overrides, f"trainer.out_dir={out}"]), on_epoch=on_epoch)
    return (samples[-1] - samples[0]) / (ends[-1] - ends[0])  # steps per second after epoch 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = [*BASE, *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        throughput(base, out), throughput([*base, "trainer.diagnostics=true"], out)  # warm-up
        ratios = []
        for i in range(args.repeats):
            order = (False, True) if i % 2 == 0 else (True, False)
            speed = {on: throughput([*base, f"trainer.diagnostics={str(on).lower()}"], out) for on in order}
            ratios.append(speed[True] / speed[False])
            print(f"pair {i}: without {speed[False]:.1f} steps/s, with {speed[True]:.1f} steps/s, "
                  f"ratio {ratios[-1]:.3f}")
    overhead = 1 - statistics.median(ratios)
    print(f"diagnostics overhead at diagnostics.every=1: {overhead * 100:.1f}% "
          f"(median of {args.repeats} pairs; target < 5%)")


if __name__ == "__main__":
    main()
