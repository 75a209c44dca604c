"""trainer.threads: the wall time of whole `optlab` processes at different thread counts,
alternating in one run (so load that comes and goes falls on every setting alike).

Two cases: the default `optlab train` (digits MLP, 20 epochs) with trainer.threads=auto
and with each count in --counts; and a study (`optlab study run STUDY`, a fresh output
folder each time) with this checkout's optlab and, when --baseline-src names another
optlab source tree (e.g. `git worktree add /tmp/before COMMIT`), with that one. Medians
and each setting's ratio to auto's median are printed.

    python bench/threads.py
    python bench/threads.py --repeats 5 --study symmetry --baseline-src /tmp/before
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = ["train", "trainer.progress=false"]


def wall(args: list[str], cwd: str, pythonpath: str | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch's own default, as a user has
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optlab", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def baseline_path(src: str, scratch: str) -> str:
    """A folder on PYTHONPATH where `optlab` is the baseline's runner/ (its package-dir)."""
    link = Path(scratch) / "baseline" / "optlab"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path(src).resolve() / "runner")
    return str(link.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--counts", default="1,2", help="explicit trainer.threads values beside auto")
    parser.add_argument("--study", default="symmetry")
    parser.add_argument("--baseline-src", help="another optlab source tree to run the study with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cases = {"train auto": (TRAIN, None)}
        cases.update({f"train threads={n}": ([*TRAIN, f"trainer.threads={n}"], None) for n in args.counts.split(",")})
        cases[f"study {args.study}"] = (["study", "run", args.study], None)
        if args.baseline_src:
            cases[f"study {args.study}, baseline"] = (["study", "run", args.study], baseline_path(args.baseline_src,
                                                                                                 scratch))
        times: dict[str, list[float]] = {name: [] for name in cases}
        for r in range(args.repeats):
            for name, (command, pythonpath) in cases.items():
                extra = ["--out", f"{scratch}/studies{r}-{len(times[name])}{hash(name) % 997}"] if "study" in name \
                    else [f"trainer.out_dir={scratch}/runs"]
                times[name].append(wall([*command, *extra], scratch, pythonpath))
                print(f"round {r}: {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    for name, values in times.items():
        reference = statistics.median(times["train auto" if name.startswith("train") else f"study {args.study}"])
        print(f"{name:32s} median {statistics.median(values):7.2f} s  (min {min(values):.2f}, max {max(values):.2f})"
              f"  ratio to auto {statistics.median(values) / reference:.2f}")


if __name__ == "__main__":
    main()
