"""Which sampler finds a good configuration on a fixed budget? TPE, random and grid, each run
on the same budget over several sweep seeds (the seed also sets the training seed, so every
sampler meets the same worlds); prints the median best val_acc of each.

    python bench/sweep_efficiency.py [--trials 9] [--seeds 3] [--epochs 4] [--samplers tpe,random,grid]

Grid gets floor(trials ** (1/2)) points per parameter (two parameters), so it never uses
more than the budget. Defaults take a few minutes on 2 cores; raise --trials/--seeds/--epochs
for a firmer answer.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPACE = {"optimizer.lr": {"type": "float", "low": 1.0e-4, "high": 1.0, "log": True},
         "optimizer.weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-1, "log": True}}


def best_of_sweep(workdir: Path, sampler: str, seed: int, args) -> float:
    from optlab.cli.app import main

    study = f"{sampler}-{seed}"
    sweep = workdir / f"{study}.yaml"
    sweep.write_text(yaml.safe_dump({
        "metric": "val_acc", "sampler": sampler, "pruner": "none", "trials": args.trials, "seed": seed,
        "grid_points": max(1, int(args.trials ** 0.5)),
        "base": ["data=digits", "model=mlp", "model.width=32", "optimizer=momentum", f"trainer.epochs={args.epochs}",
                 f"trainer.seed={seed}", f"trainer.out_dir={workdir / 'outputs'}"],
        "space": SPACE}))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["sweep", str(sweep)])
    if code != 0:
        sys.exit(f"sweep {study} exited {code}")
    with open(workdir / "outputs" / "sweeps" / study / "trials.csv", newline="") as f:
        return max(float(t["value"]) for t in csv.DictReader(f) if t["status"] == "completed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=9, help="budget per sweep")
    parser.add_argument("--seeds", type=int, default=3, help="sweeps per sampler")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samplers", default="tpe,random,grid")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    samplers = args.samplers.split(",")
    best: dict[str, list[float]] = {s: [] for s in samplers}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for sampler in samplers:
                best[sampler].append(best_of_sweep(Path(tmp), sampler, seed, args))
                print(f"seed {seed} {sampler:<6} best val_acc {best[sampler][-1]:.4f}", file=sys.stderr)
    print(f"{args.trials} trials x {args.epochs} epochs, {args.seeds} sweep seeds, "
          f"{time.perf_counter() - started:.0f} s")
    for sampler in samplers:
        values = best[sampler]
        print(f"{sampler:<6} median best val_acc {statistics.median(values):.4f}  "
              f"(min {min(values):.4f}, max {max(values):.4f})")


if __name__ == "__main__":
    main()
