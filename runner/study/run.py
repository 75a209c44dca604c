"""One study from start to end: plan -> runs (reused, resumed or trained) -> measures ->
criteria -> verdict.json, table.csv, runs.csv, the figure and study.md in its folder."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from optlab.compare.run import machine
from optlab.study.spec import StudySpec


@dataclass(frozen=True)
class StudyOptions:
    quick: bool = False
    seeds: int | None = None        # over the study's own
    population: int | str | None = None  # None: the study's `population`, else auto
    out_root: Path = Path("outputs/studies")


def study_dir(spec: StudySpec, options: StudyOptions) -> Path:
    """outputs/studies/NAME/, and outputs/studies/quick/NAME/ for --quick (other runs, other verdict)."""
    return Path(options.out_root) / ("quick" if options.quick else "") / spec.name


def population_of(spec: StudySpec, options: StudyOptions) -> int | str:
    """--population, else the study's `population`, else auto (K measured: training.grouping.auto_size)."""
    if options.population is not None:
        return options.population
    return int(spec.population) if spec.population else "auto"


def run_study(spec: StudySpec, options: StudyOptions) -> dict:
    """Run (or finish) the study and write its outputs; returns verdict.json's content."""
    from optlab.runs.files import make_dirs
    from optlab.study.execute import (
        plan,
        plan_sweeps,
        run_grid_arms,
        run_sweep_arms,
        seeds_and_overrides,
    )

    start = time.perf_counter()
    folder = make_dirs(study_dir(spec, options))
    if spec.comparison is not None:
        records, seeds = run_comparison_arms(spec, options, folder)
        return conclude(spec, folder, records, [], {"seeds": seeds, "quick_overrides": [], "quick": options.quick,
                                                    "wall_time_s": time.perf_counter() - start})
    runs_dir = make_dirs(folder / "runs")
    planned = plan(spec, options.quick, options.seeds)
    sweeps = plan_sweeps(spec, runs_dir, options.quick, options.seeds)
    records = run_grid_arms(spec, runs_dir, planned, population_of(spec, options))
    records += run_sweep_arms(spec, sweeps)
    wall = time.perf_counter() - start
    seeds, extra = seeds_and_overrides(spec, options.quick, options.seeds)
    return conclude(spec, folder, records, planned, {"seeds": seeds, "quick_overrides": extra, "wall_time_s": wall,
                                                     "quick": options.quick})


COMPARISON = "comparison"  # the comparison's folder inside the study's


def run_comparison_arms(spec: StudySpec, options: StudyOptions, folder: Path) -> tuple[list, int]:
    """The study's comparison, run (or finished) in STUDY_DIR/comparison/: one record per
    rerun seed of each workload and contender; and the number of rerun seeds."""
    from optlab.compare.run import CompareOptions, run_comparison
    from optlab.study.execute import Record

    result = run_comparison(spec.comparison, CompareOptions(
        quick=options.quick, population=options.population, rerun_seeds=options.seeds, folder=folder / COMPARISON))
    records = [Record(f"{t.workload}/{t.contender}", t.seed, "", t.run_dir, t.status, not result.trained)
               for t in result.reruns]
    return records, int(result.summary["protocol"]["rerun_seeds"])


def conclude(spec: StudySpec, folder: Path, records: list, planned: list, facts: dict) -> dict:
    """Measures, criteria and the verdict from the runs; every output file written."""
    from optlab.study.figure import draw
    from optlab.study.measure import measure_all, measure_range
    from optlab.study.verdict import arm_summary, judge, overall
    from optlab.study.write import summary_table, write_outputs

    earlier = _earlier_compute(folder, records)
    trained = any(not r.reused for r in records)
    facts = {**facts, "compute_s": earlier + facts["wall_time_s"] if trained or not earlier else earlier}
    epochs = {(p.arm, p.seed, p.variant): int(p.cfg.trainer.epochs) for p in planned}
    values, rows = measure_all(spec, records, lambda r: epochs.get((r.arm, r.seed, r.variant), 0))
    results = [judge(c, values[c["measure"]], measure_range(spec, c["measure"])) for c in spec.criteria]
    figure = f"{spec.name}.png"
    if spec.figure.get("kind") == COMPARISON:  # the comparison's own figure of the reruns
        import shutil

        shutil.copyfile(folder / COMPARISON / "tuned.png", folder / figure)
    else:
        draw(spec, values, rows, folder / figure, facts["quick"])
    verdict = {"study": spec.name, "claim": spec.claim, "source": spec.source,
               **overall([r["outcome"] for r in results], facts["quick"]),
               "criteria": results, "effect": results[0]["effect"],
               "arms": {name: {arm: arm_summary(per_seed, bounds=measure_range(spec, name))
                               for arm, per_seed in by_arm.items()} for name, by_arm in values.items()},
               "values": values, "seeds": facts["seeds"], "quick_overrides": facts["quick_overrides"],
               **counted(spec, records), "reused": sum(r.reused for r in records), "wall_time_s": facts["wall_time_s"],
               "compute_s": facts["compute_s"],
               "figure": figure, "folder": str(folder), "machine": machine(), "optlab": _version(), "scaled_down": spec.scaled_down}
    verdict = json.loads(json.dumps(verdict, default=str))  # plain JSON values, as verdict.json will hold
    write_outputs(folder, spec, summary_table(spec, values, rows), rows, verdict)
    return verdict


def counted(spec: StudySpec, records: list) -> dict:
    """What the study ran: `runs` (training runs of override arms), `sweeps` (one per seed of
    a sweep arm) and their finished `trials`."""
    from optlab.study.execute import finished_trials

    swept = {a.name for a in spec.arms if a.sweep is not None}
    sweeps = [r for r in records if r.arm in swept]
    return {"runs": len(records) - len(sweeps), "sweeps": len(sweeps),
            "trials": sum(finished_trials(r.path) for r in sweeps)}


def _earlier_compute(folder: Path, records: list) -> float:
    """The time earlier invocations spent on the runs this one reused (from the last
    verdict.json): so a study's compute time survives reruns that only reuse runs."""
    path = folder / "verdict.json"
    if not any(r.reused for r in records) or not path.is_file():
        return 0.0
    try:
        return float(json.loads(path.read_text()).get("compute_s", 0.0))
    except (ValueError, OSError):
        return 0.0


def _version() -> str:
    from optlab import __version__

    return __version__
