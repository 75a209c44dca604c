"""One comparison from start to end: the tuning sweeps -> each workload's target -> the chosen
settings -> their reruns -> times, profiles, scores, pairwise verdicts -> the outputs in
outputs/comparisons/NAME/ (outputs/comparisons/quick/NAME/ for --quick)."""
from __future__ import annotations

import datetime
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

from optlab.compare.spec import ComparisonSpec, shrunk


@dataclass(frozen=True)
class CompareOptions:
    quick: bool = False
    population: int | None = None   # runs trained at once per sweep worker (None: one at a time)
    jobs: int | None = None         # worker processes per sweep (None: one, in this process)
    sweeps: object = None           # sweep.run.RunOptions: heartbeat and grace (None: the sweep's defaults)
    rerun_seeds: int | None = None  # over the protocol's
    out_root: Path = Path("outputs/comparisons")
    folder: Path | None = None      # the comparison's folder, over out_root/[quick/]NAME


@dataclass
class Result:
    summary: dict   # compare.json's content
    tables: object  # results.Tables
    reruns: list    # measure.Trial of every rerun
    trained: bool   # whether this invocation trained anything (else it reused every run)


def comparison_dir(spec: ComparisonSpec, options: CompareOptions) -> Path:
    if options.folder is not None:
        return Path(options.folder)
    return Path(options.out_root) / ("quick" if options.quick else "") / spec.name


def effective(spec: ComparisonSpec, options: CompareOptions) -> ComparisonSpec:
    """The spec this invocation runs: shrunk for --quick, with the rerun seeds asked for."""
    spec = shrunk(spec) if options.quick else spec
    if options.rerun_seeds is not None:
        spec = replace(spec, protocol=replace(spec.protocol, rerun_seeds=options.rerun_seeds))
    return spec


def run_comparison(spec: ComparisonSpec, options: CompareOptions) -> Result:
    """Run (or finish) the comparison and write its outputs."""
    from optlab.compare import execute, figure, results, write
    from optlab.runs.files import make_dirs

    start, load = time.perf_counter(), os.getloadavg()[0]
    spec = effective(spec, options)
    folder = make_dirs(comparison_dir(spec, options)).resolve()
    how = execute.Options(options.population, options.jobs, options.sweeps)
    tuning = execute.plan_tuning(spec, folder, how)
    trained = execute.run_sweeps(tuning, "tuning", how)
    trials = [t for p in tuning for t in _trials(p)]
    targets = results.settle_targets(spec, trials)
    picks = results.choices(spec, trials, targets)
    reruns_planned = [execute.plan_rerun(spec, spec.workload(w), spec.contender(c), list(pick.overrides), folder, how)
                      for (w, c), pick in picks.items() if pick is not None]
    trained = execute.run_sweeps(reruns_planned, "reruns", how) or trained
    reruns = [t for p in reruns_planned for t in _trials(p)]
    tables = results.tabulate(spec, trials, reruns, targets, picks)
    summary = _summary(spec, options, tables, folder, len(trials) + len(reruns),
                       time.perf_counter() - start, (load, os.getloadavg()[0]))
    figure.draw(spec, tables, folder / summary["figure"], options.quick)
    figure.draw_tuned(spec, tables, folder / "tuned.png", options.quick)
    write.write_outputs(folder, spec, tables, summary)
    return Result(summary, tables, reruns, trained)


def _trials(planned) -> list:
    from optlab.compare.measure import read_trials

    return read_trials(planned.sweep_dir, planned.workload, planned.contender, planned.study)


def _summary(spec, options: CompareOptions, tables, folder: Path, runs: int, wall: float, load: tuple) -> dict:
    from dataclasses import asdict

    from optlab import __version__

    return {"comparison": spec.name, "description": spec.description, "quick": options.quick,
            "protocol": asdict(spec.protocol), "workloads": [asdict(w) for w in spec.workloads],
            "contenders": [asdict(c) for c in spec.contenders], "targets": tables.targets,
            "parity": tables.parity, "scores": tables.scores, "runs": runs, "wall_time_s": wall, "load": list(load),
            "population": options.population, "jobs": options.jobs, "figure": "profile.png", "folder": str(folder),
            "machine": machine(), "date": datetime.date.today().isoformat(), "optlab": __version__}


def machine() -> str:
    """The cores this process may use, the architecture and torch's threads."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} CPU cores ({platform.machine()}), torch threads {torch.get_num_threads()}"
