"""optlab's start-up: the wall time of `optlab train trainer.epochs=1` next to `python -c
"import torch"`, measured in the same run, and where the difference goes.

Each command runs --repeats times, alternating; the medians are printed with their
difference. The breakdown comes from one more `optlab train` run with `python -X
importtime` (modules optlab imports beyond torch, by cumulative time) and from timing its
phases in one process (compose, build, the epoch, the run folder's writes).

    python bench/startup.py
    python bench/startup.py --repeats 9
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = ["train", "trainer.epochs=1", "trainer.progress=false"]


def wall(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - started


def import_breakdown(cwd: str, top: int = 12) -> list[tuple[float, str]]:
    """Modules imported by `optlab train` but not by `import torch`, by cumulative time."""
    def imports(args: list[str]) -> dict[str, float]:
        done = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        found = {}
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
            if match and len(match.group(2)) <= 3:  # top-level imports and their direct children
                found[match.group(3)] = int(match.group(1)) / 1e6
        return found

    torch_only = imports(["-c", "import torch"])
    optlab = imports(["-c", f"import torch; from optlab.cli.app import main; main({RUN!r})"])  # torch first
    extra = [(seconds, name) for name, seconds in optlab.items() if name not in torch_only]
    return sorted(extra, reverse=True)[:top]


def phases(cwd: str) -> dict[str, float]:
    """The phases of one run in this process, torch already imported."""
    os.chdir(cwd)
    import torch  # noqa: F401

    times = {}
    started = time.perf_counter()
    from optlab.config.compose import compose
    cfg = compose(RUN[1:])
    times["compose (first: Hydra and the specs)"] = time.perf_counter() - started
    from optlab.training.build import build
    mark = time.perf_counter()
    build(cfg)
    times["build (data, model, optimizer)"] = time.perf_counter() - mark
    from optlab.training.api import train
    mark = time.perf_counter()
    train(cfg)
    times["train (build, one epoch, run folder, summary)"] = time.perf_counter() - mark
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    optlab = [str(Path(sys.executable).with_name("optlab")), *RUN]
    torch_only = [sys.executable, "-c", "import torch"]
    with tempfile.TemporaryDirectory() as cwd:
        wall(optlab, cwd)  # warm the file cache
        runs: dict[str, list[float]] = {"optlab train trainer.epochs=1": [], 'python -c "import torch"': []}
        for i in range(args.repeats):
            for name, command in (list(zip(runs, (optlab, torch_only))))[:: 1 if i % 2 == 0 else -1]:
                runs[name].append(wall(command, cwd))
        medians = {name: statistics.median(times) for name, times in runs.items()}
        for name, median in medians.items():
            print(f"{name:34} median {median:6.2f} s   ({', '.join(f'{t:.2f}' for t in runs[name])})")
        difference = medians["optlab train trainer.epochs=1"] - medians['python -c "import torch"']
        print(f"{'difference':34} {difference:6.2f} s")
        print("\nimported by optlab train beyond torch (cumulative s):")
        for seconds, name in import_breakdown(cwd):
            print(f"  {seconds:6.3f}  {name}")
        print("\nphases in one process (torch imported):")
        for name, seconds in phases(cwd).items():
            print(f"  {seconds:6.3f}  {name}")


if __name__ == "__main__":
    main()
