"""Population training against the same trials run solo, in one invocation.

Two measurements, so that kernel and start-up gains can be told apart:

1. Sweeps. The same set of trials (a grid sweep over lr x weight decay, pruner off, so every
   variant trains exactly the same configurations) runs as `optlab sweep` in several ways:
   solo one after another, solo with `--jobs 2` worker processes, and populations of each K
   (`--population K`). Each variant runs in its own process, so its peak memory (resident
   set; on a GPU, the most memory torch allocated) is its own. Printed per case and variant:
   wall time, trials per minute, the ratio to solo one after another, and the peak. The
   `mlp-digits-long` case (64 trials x 200 epochs) is one whose solo sweep takes minutes, as
   the sweeps users wait on (at least 2 on the 2-core reference machine), so that start-up
   and compiling weigh in it as they do in a user's; it also runs each K with
   trainer.compile=true (a cold compile counted in its wall time). The last columns say
   whether the populations compiled their step and the machine's load (1-minute average)
   when the variant ended.
2. Engines. One epoch of K members of the case's model, in this process: each member's solo
   step one after another, the stacked step, and the compiled stacked step (its compile time
   apart), in turns (--repeats of them, after one to warm up and compile), so that a drifting
   load meets each alike. Printed per K: the median seconds per epoch of each, and the median
   of the turns' ratios to solo.

    python bench/population.py                                    # every case, K = 4, 16, 64, CPU
    python bench/population.py --case mlp-digits-long --sizes 16 --skip-sweeps
    python bench/population.py --case mlp-digits --sizes 1,16,64,256 --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CASES = {  # name -> (base overrides, lr grid, wd grid)
    "mlp-digits": (["data=digits", "model=mlp", "model.width=128", "optimizer=momentum", "trainer.epochs=5"], 8, 8),
    "mlp-digits-long": (["data=digits", "model=mlp", "model.width=128", "optimizer=momentum", "trainer.epochs=200"],
                        8, 8),
    "cnn-shapes": (["data=shapes", "data.n_samples=1000", "model=cnn", "model.channels=8", "model.depth=3",
                    "optimizer=momentum", "trainer.epochs=3"], 8, 4),
}
COMPILED_SWEEPS = ("mlp-digits-long",)  # also swept with trainer.compile=true (its cold compile in the wall time)


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
    """One `optlab sweep` in a child process: its wall time, finished trials, peak memory, and
    whether its populations compiled their step (trainer.compile=auto's line, or =true)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "optlab", "sweep", str(path), *flags, f"trainer.device={device}",
               f"trainer.out_dir={folder}"]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(flags) or 'solo'} failed: {stderr[-2000:]}")
    trials = json.loads((folder / "sweeps" / path.stem / "sweep.json").read_text())["trials"]
    compiled = "trainer.compile=true" in flags or "trainer.compile=auto: compiling" in stderr
    return {"wall_s": wall, "trials": trials, "peak_mb": usage.ru_maxrss / 1024, "compiled": compiled,
            "load": os.getloadavg()[0]}


def bench_case(case: str, sizes: list[int], device: str, threads: int) -> list[dict]:
    variants = [("solo", []), ("solo --jobs 2", ["--jobs", "2"])] + [
        (f"population {k}", ["--population", str(k)]) for k in sizes] + [
        (f"population {k} compiled", ["--population", str(k), "trainer.compile=true"]) for k in sizes
        if case in COMPILED_SWEEPS]
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


# ---------------------------------------------------------------- engines, per epoch


def members(case: str, k: int, device: str) -> list:
    """K members of the case's model: its base config with K seeds and lrs."""
    from optlab.config.compose import compose
    from optlab.training.build import build

    base = [*CASES[case][0], "trainer.progress=false", f"trainer.device={device}"]
    return [build(compose([*base, f"trainer.seed={i}", f"optimizer.lr={0.01 + 0.29 * i / max(k - 1, 1):.4g}"]))
            for i in range(k)]


def one_epoch(engine, parts) -> None:
    """An epoch of the engine's members, as the driver runs it: steps, then the validation pass."""
    from optlab.training.state import EpochTally

    first = parts[0]
    batch_size = first.batch_size(0)
    engine.begin_epoch(0, first.batches.num_batches(batch_size), [EpochTally.zero(first.device)] * engine.size)
    engine.set_lrs([float(p.cfg["optimizer"]["lr"]) for p in parts])
    for i, batch in enumerate(engine.batches(batch_size, 0, 0)):
        engine.step(i, batch, sample_norm=i % 50 == 0)
    engine.evaluate("val")
    if first.device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def engine_epochs(case: str, k: int, device: str, repeats: int) -> dict:
    """Seconds per epoch of each engine, measured in turns (solo, stacked, compiled, again),
    so that a load that drifts meets every engine alike: the medians of the turns, and the
    median of each turn's ratios."""
    from optlab.training.grouping import structure
    from optlab.training.solo import SoloEngine
    from optlab.training.stacked import StackedEngine

    parts = members(case, k, device)
    solos = [SoloEngine(p) for p in parts]
    key = structure(parts[0].cfg)
    stacked, compiled = StackedEngine(parts, key), StackedEngine(parts, key, compiled=True)
    runs = {"solo": lambda: [one_epoch(engine, [p]) for engine, p in zip(solos, parts)],
            "stacked": lambda: one_epoch(stacked, parts), "compiled": lambda: one_epoch(compiled, parts)}
    first = {name: timed(run) for name, run in runs.items()}  # warm-up; the compiled one compiles here
    turns = [{name: timed(run) for name, run in runs.items()} for _ in range(repeats)]
    median = {name: statistics.median(t[name] for t in turns) for name in runs}
    return {"case": case, "k": k, **{f"{name}_s": value for name, value in median.items()},
            "compile_s": first["compiled"] - median["compiled"],
            "stacked_x": statistics.median(t["solo"] / t["stacked"] for t in turns),
            "compiled_x": statistics.median(t["solo"] / t["compiled"] for t in turns)}


def commit() -> str:
    """The checkout's commit (with a + when it has changes), or ? outside one."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--sizes", default="4,16,64", help="population sizes K")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (1: the reference)")
    parser.add_argument("--repeats", type=int, default=5, help="timed turns of the engines (after one to warm up)")
    parser.add_argument("--skip-sweeps", action="store_true", help="the engines' epochs only")
    parser.add_argument("--skip-engines", action="store_true", help="the sweeps only")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    # a cache of its own: the first compiled variant pays a cold compile, as on a machine that
    # never compiled this step, whatever earlier runs left in the user's cache
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="optlab-bench-inductor-"))
    sizes, cases = [int(k) for k in args.sizes.split(",")], args.case or sorted(CASES)
    print(f"{time.strftime('%Y-%m-%d %H:%M')} commit={commit()} device={args.device} threads={args.threads} "
          f"torch={torch.__version__} cores={os.cpu_count()} sizes={sizes} load={os.getloadavg()[0]:.2f}")
    if not args.skip_sweeps:  # first: the engines grow this process, whose size a forked child starts with
        print(f"\n{'case':16} {'variant':25} {'trials':>6} {'wall s':>8} {'trials/min':>11} {'vs solo':>8} "
              f"{'peak MB':>8} {'compiled':>9} {'load':>5}")
        for case in cases:
            for r in bench_case(case, sizes, args.device, args.threads):
                print(f"{r['case']:16} {r['variant']:25} {r['trials']:6d} {r['wall_s']:8.1f} "
                      f"{r['trials_per_min']:11.1f} {r['vs_solo']:8.2f} {r['peak_mb']:8.0f} "
                      f"{'yes' if r['compiled'] else 'no':>9} {r['load']:5.2f}", flush=True)
    if not args.skip_engines:
        print(f"\n{'case':16} {'K':>4} {'solo s':>8} {'stacked s':>10} {'compiled s':>11} {'compile s':>10} "
              f"{'stacked x':>10} {'compiled x':>11}   (per epoch)")
        for case in cases:
            for k in sizes:
                r = engine_epochs(case, k, args.device, args.repeats)
                print(f"{case:16} {k:4d} {r['solo_s']:8.3f} {r['stacked_s']:10.3f} {r['compiled_s']:11.3f} "
                      f"{r['compile_s']:10.1f} {r['stacked_x']:10.2f} {r['compiled_x']:11.2f}", flush=True)


if __name__ == "__main__":
    main()
