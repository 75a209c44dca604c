"""Population training against the same trials run solo, in one invocation.

The same set of trials (a grid sweep over lr x weight decay, pruner off, so every variant
trains exactly the same configurations) runs as `optlab sweep` in several ways:
populations of K = 1, 4, 16, 64 (`--population K`), solo one after another, and solo with
`--jobs 2` worker processes. Each variant runs in its own process, so its peak memory
(resident set; on a GPU, the most memory torch allocated) is its own. Printed per case and
variant: wall time, trials per minute, the ratio to solo one after another, and the peak.

    python bench/population.py                        # digits MLP and a CNN on shapes, CPU
    python bench/population.py --case mlp-digits --sizes 1,16,64,256 --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CASES = {  # name -> (base overrides, lr grid, wd grid)
    "mlp-digits": (["data=digits", "model=mlp", "model.width=128", "optimizer=momentum", "trainer.epochs=5"],
                   8, 8),
    "cnn-shapes": (["data=shapes", "data.n_samples=1000", "model=cnn", "model.channels=8", "model.depth=3",
                    "optimizer=momentum", "trainer.epochs=3"], 8, 4),
}


def sweep_file(folder: Path, case: str) -> Path:
    base, lrs, wds = CASES[case]
    body = {"metric": "val_acc", "sampler": "grid", "pruner": "none", "trials": lrs * wds, "seed": 0,
            "base": [*base, "trainer.progress=false"],
            "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True, "grid":
                                       spread(0.01, 0.3, lrs)},
                      "optimizer.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True,
                                                 "grid": spread(1e-6, 1e-3, wds)}}}
    path = folder / f"{case}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def spread(low: float, high: float, n: int) -> list[float]:
    return [float(f"{low * (high / low) ** (i / max(n - 1, 1)):.4g}") for i in range(n)]


def run_variant(path: Path, folder: Path, flags: list[str], device: str, threads: int) -> dict:
    """One `optlab sweep` in a child process: its wall time, finished trials and peak memory."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "optlab", "sweep", str(path), *flags, f"trainer.device={device}",
               f"trainer.out_dir={folder}"]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(flags) or 'solo'} failed: {child.stderr.read()[-2000:]}")
    trials = json.loads((folder / "sweeps" / path.stem / "sweep.json").read_text())["trials"]
    return {"wall_s": wall, "trials": trials, "peak_mb": usage.ru_maxrss / 1024}


def bench_case(case: str, sizes: list[int], device: str, threads: int) -> list[dict]:
    variants = [("solo", []), ("solo --jobs 2", ["--jobs", "2"])] + [
        (f"population {k}", ["--population", str(k)]) for k in sizes]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in variants:
            folder = Path(tmp) / name.replace(" ", "_")
            folder.mkdir()
            results.append({"case": case, "variant": name,
                            **run_variant(sweep_file(folder, case), folder, flags, device, threads)})
    solo = results[0]["trials"] / results[0]["wall_s"]
    for r in results:
        r["trials_per_min"] = 60 * r["trials"] / r["wall_s"]
        r["vs_solo"] = (r["trials"] / r["wall_s"]) / solo
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--sizes", default="1,4,16,64", help="population sizes K")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (1: the reference)")
    args = parser.parse_args()
    import torch

    sizes = [int(k) for k in args.sizes.split(",")]
    print(f"device={args.device} threads={args.threads} torch={torch.__version__} sizes={sizes}")
    print(f"{'case':12} {'variant':16} {'trials':>6} {'wall s':>8} {'trials/min':>11} {'vs solo':>8} {'peak MB':>8}")
    for case in args.case or sorted(CASES):
        for r in bench_case(case, sizes, args.device, args.threads):
            print(f"{r['case']:12} {r['variant']:16} {r['trials']:6d} {r['wall_s']:8.1f} {r['trials_per_min']:11.1f} "
                  f"{r['vs_solo']:8.2f} {r['peak_mb']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
