"""Does pruning save training? The same sweep (same sampler seed, so the same configurations)
with --pruner none and with --pruner median; total epochs are counted from the run folders.

    python bench/sweep_pruning.py [--trials 16] [--epochs 6] [--pruner median] [--seed 0]

Prints the epochs each spent, the ratio, and the best value each found.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPACE = {"optimizer.lr": {"type": "float", "low": 1.0e-4, "high": 1.0, "log": True},
         "optimizer.weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True}}


def run_sweep(workdir: Path, pruner: str, args) -> dict:
    """One in-process `optlab sweep`; returns epochs spent and the best value."""
    from optlab.cli.app import main
    from optlab.runs.files import read_rows

    sweep = workdir / f"{pruner}.yaml"
    sweep.write_text(yaml.safe_dump({
        "metric": "val_acc", "sampler": "random", "pruner": pruner, "trials": args.trials, "seed": args.seed,
        "base": ["data=digits", "model=mlp", "model.width=64", "optimizer=momentum", f"trainer.epochs={args.epochs}",
                 f"trainer.out_dir={workdir / 'outputs'}"],
        "space": SPACE}))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["sweep", str(sweep)])
    if code != 0:
        sys.exit(f"sweep with --pruner {pruner} exited {code}")
    folder = workdir / "outputs" / "sweeps" / pruner
    with open(folder / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    epochs = sum(len(read_rows(run / "metrics.csv")) for run in (folder / "runs").iterdir())
    values = [float(t["value"]) for t in trials if t["value"]]
    return {"epochs": epochs, "best": max(values), "pruned": sum(t["status"] == "pruned" for t in trials),
            "trials": len(trials), "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--pruner", default="median", help="the pruner compared with none")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (both sweeps sample the same configurations)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        results = {p: run_sweep(Path(tmp), p, args) for p in ("none", args.pruner)}
    for name, r in results.items():
        print(f"--pruner {name:<18} epochs {r['epochs']:4d}  pruned {r['pruned']:3d}/{r['trials']}  "
              f"best val_acc {r['best']:.4f}  {r['seconds']:.0f} s")
    ratio = results[args.pruner]["epochs"] / results["none"]["epochs"]
    print(f"{args.pruner} spent {ratio:.2f}x the epochs of none ({args.trials} trials x {args.epochs} epochs budget)")


if __name__ == "__main__":
    main()
