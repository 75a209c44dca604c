"""A study's runs: planned from its arms and seeds, finished ones reused, the rest trained.

Every run of a study lives in STUDY_DIR/runs/, named `<arm>-seed<s>[-<variant>]` (trainer.name).
A folder is reused when its trainer.name and everything it learns from (the config without
bookkeeping keys; a key optlab gained since counts as its default) are the planned run's:
completed, diverged and pruned runs count as done (the newest such folder is used),
interrupted ones are resumed from their checkpoint, so a study stopped half way goes on where
it was. New runs of one structure train together as a population of up to K (seed repeats
and lr grids), the others alone. Sweep arms run one optlab sweep per seed in
STUDY_DIR/runs/sweeps/<arm>-seed<s>/; rerunning continues each to its trial budget.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from optlab.study.spec import Arm, StudySpec

DONE = ("completed", "diverged", "pruned")


@dataclass
class Planned:
    arm: str
    seed: int
    variant: str          # the arm's inner-grid values ("" without one)
    name: str             # trainer.name and the folder name's tail
    cfg: object           # the composed config


@dataclass
class Record:
    arm: str
    seed: int
    variant: str
    path: Path            # the run folder, or the sweep folder of a sweep arm
    status: str
    reused: bool


def seeds_and_overrides(spec: StudySpec, quick: bool, seeds: int | None) -> tuple[int, list[str]]:
    """How many seeds, and the overrides quick mode adds (last, so they win)."""
    extra = list(spec.quick.get("overrides", [])) if quick else []
    count = seeds or (spec.quick.get("seeds", 2) if quick else spec.seeds)
    return int(count), extra


def plan(spec: StudySpec, quick: bool = False, seeds: int | None = None) -> list[Planned]:
    """Every run of the grid arms, composed (and so validated) before anything trains."""
    from optlab.config.compose import Composer
    from optlab.sweep.build import merge_overrides
    from optlab.sweep.multirun import expand

    count, extra = seeds_and_overrides(spec, quick, seeds)
    compose, planned = Composer(), []
    for arm in (a for a in spec.arms if a.sweep is None):
        combos = expand(merge_overrides(merge_overrides(list(spec.base), arm.overrides), extra))
        varying = [i for i in range(len(combos[0])) if len({c[i] for c in combos}) > 1]
        for combo in combos:
            variant = ",".join(combo[i] for i in varying)
            for seed in range(count):
                name = f"{arm.name}-seed{seed}" + (f"-{variant}" if variant else "")
                cfg = compose(merge_overrides(combo, [f"trainer.seed={seed}", "trainer.progress=false",
                                                      f"trainer.name={_quote(name)}"]))
                planned.append(Planned(arm.name, seed, variant, name, cfg))
    return planned


def _quote(text: str) -> str:
    return "'" + text.replace("'", "") + "'"


def learned_config(cfg) -> dict[str, str]:
    """What a run learns from: its config without bookkeeping keys, each value as comparable text."""
    import json

    from optlab.config.compose import as_plain, flatten, is_bookkeeping

    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in flatten(as_plain(cfg)) if not is_bookkeeping(k)}


def option_defaults(cfg) -> dict[str, str]:
    """Every key of the options this config chose -> its default, as comparable text."""
    import json

    from optlab.config.compose import as_plain
    from optlab.config.specs import GROUPS, option_specs

    plain, out = as_plain(cfg), {}
    for group in GROUPS:
        for entry, spec in option_specs(group, plain.get(group) or {}):
            prefix = f"{group}.{entry}." if entry else f"{group}."
            out.update({prefix + key.name: json.dumps(key.default, sort_keys=True, default=str) for key in spec.keys})
    return out


def same_learning(old: dict[str, str], new: dict[str, str], defaults: dict[str, str]) -> bool:
    """Whether a run with config `old` learned what `new` asks for. A key the old run's
    config lacks (added to optlab after it ran) counts as equal when `new` has its default:
    new keys are opt-in, so the old run behaved as their default does."""
    if any(key not in new for key in old):
        return False
    return all(old[key] == value if key in old else defaults.get(key) == value for key, value in new.items())


def existing_runs(runs_dir: Path) -> dict[str, list[tuple[Path, str, dict]]]:
    """trainer.name -> [(folder, status, learned config)] of the run folders already there."""
    from optlab.report.load import load_run

    found: dict[str, list[tuple[Path, str, dict]]] = {}
    if not runs_dir.is_dir():
        return found
    for folder in sorted(p for p in runs_dir.iterdir() if (p / "config.yaml").is_file()):
        try:
            record, _, _ = load_run(folder)
            cfg = _read_cfg(folder)
        except Exception as exc:  # noqa: BLE001  a damaged folder is not reused; say why
            print(f"study: {folder.name}: not reused ({exc})", file=sys.stderr)
            continue
        found.setdefault(str(cfg["trainer"]["name"]), []).append((folder, str(record["status"]), learned_config(cfg)))
    return found


def _read_cfg(folder: Path) -> dict:
    from optlab import safe_yaml

    return safe_yaml.load_file(folder / "config.yaml")


def match(run: Planned, found: dict) -> tuple[Path, str] | None:
    """The folder of this planned run already there (the newest finished one first), if any."""
    wanted, defaults = learned_config(run.cfg), option_defaults(run.cfg)
    same = [(folder, status) for folder, status, learned in found.get(run.name, [])
            if same_learning(learned, wanted, defaults)]
    same.sort(key=lambda fs: fs[0].name, reverse=True)  # the newest (folders start with their time) ...
    same.sort(key=lambda fs: fs[1] not in DONE)         # ... of the finished ones
    return same[0] if same else None


def run_grid_arms(spec: StudySpec, runs_dir: Path, planned: list[Planned], population: int) -> list[Record]:
    """Reuse what is finished; train the rest, continuing what was interrupted from its
    checkpoint, in populations of up to K (optlab.training.api.train_many)."""
    from optlab.config.compose import load_run_config
    from optlab.sweep.multirun import GroupLines
    from optlab.training.api import RunRequest, train_many

    found = existing_runs(runs_dir)
    records: dict[int, Record] = {}
    to_train: list[tuple[int, RunRequest]] = []
    for i, run in enumerate(planned):
        hit = match(run, found)
        if hit and hit[1] in DONE:
            records[i] = Record(run.arm, run.seed, run.variant, hit[0], hit[1], True)
        else:
            to_train.append((i, RunRequest(load_run_config(hit[0]), resume_dir=hit[0]) if hit else RunRequest(run.cfg)))
    resumed = sum(r.resume_dir is not None for _, r in to_train)
    print(f"study {spec.name}: {len(planned)} run(s): {len(records)} reused, {resumed} to resume, "
          f"{len(to_train) - resumed} to train", file=sys.stderr)
    results = train_many([r for _, r in to_train], population=population, run_root=runs_dir, on_group=GroupLines(),
                         who=f"study {spec.name}")
    for (i, request), result in zip(to_train, results):
        run = planned[i]
        records[i] = Record(run.arm, run.seed, run.variant, Path(result.run_dir), str(result.status),
                            request.resume_dir is not None)
    return [records[i] for i in range(len(planned))]


def sweep_spec_dict(spec: StudySpec, arm: Arm, seed: int, runs_dir: Path, extra: list[str], quick: bool) -> dict:
    """One seed's sweep of a sweep arm: the arm's settings, the sampler seeded by the seed,
    base = the study's base + the arm's overrides (+ quick ones), trained with that seed."""
    from optlab.sweep.build import merge_overrides

    raw = dict(arm.sweep)
    if quick:
        raw.update(spec.quick.get("sweep", {}))
    raw.update(study=f"{arm.name}-seed{seed}", seed=seed)
    base = merge_overrides(merge_overrides(list(spec.base), arm.overrides), raw.get("base", []))
    raw["base"] = merge_overrides(base, extra + [f"trainer.seed={seed}", "trainer.progress=false",
                                                 f"trainer.out_dir={runs_dir}"])
    return raw


def finished_trials(sweep_dir: Path) -> int:
    """Trials of the sweep in this folder that finished (0 before its first)."""
    from optlab.sweep.outputs import read_trial_rows

    if not (Path(sweep_dir) / "trials.csv").is_file():
        return 0
    return sum(row.get("state") == "COMPLETE" for row in read_trial_rows(sweep_dir))


def plan_sweeps(spec: StudySpec, runs_dir: Path, quick: bool = False, seeds: int | None = None) -> list[tuple]:
    """(arm, seed, sweep spec) of every sweep of the sweep arms, validated before anything trains."""
    from optlab.sweep.build import validate
    from optlab.sweep.spec import spec_from_dict

    count, extra = seeds_and_overrides(spec, quick, seeds)
    planned = []
    for arm in (a for a in spec.arms if a.sweep is not None):
        for seed in range(count):
            sweep_spec = spec_from_dict(sweep_spec_dict(spec, arm, seed, runs_dir, extra, quick),
                                        source=f"study {spec.name}, arm {arm.name}")
            validate(sweep_spec)
            planned.append((arm.name, seed, sweep_spec))
    return planned


def run_sweep_arms(spec: StudySpec, planned: list[tuple]) -> list[Record]:
    from optlab.sweep.run import RunOptions, run_workers, start_sweep

    records = []
    for arm, seed, sweep_spec in planned:
        print(f"study {spec.name}: sweep {arm} seed {seed}", file=sys.stderr, flush=True)
        started = start_sweep(sweep_spec, RunOptions())
        before = finished_trials(started.sweep_dir)
        outcome = run_workers(started, RunOptions(), on_rows=lambda rows: None)
        if outcome.stopped is not None:
            raise outcome.stopped
        reused = before > 0 and finished_trials(started.sweep_dir) == before
        records.append(Record(arm, seed, "", started.sweep_dir, "completed", reused))
    return records
