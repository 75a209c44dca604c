"""A comparison's runs, every one of them a trial of an optlab sweep: the one module of this
package that calls into sweeps (and, through them, training).

- Tuning: per workload, contender and study s, one sweep in
  FOLDER/sweeps/<workload>-<contender>-study<s>/ of T trials sampled from the contender's
  space (the protocol's sampler, seeded by s), every run trained with seed s for the
  workload's epochs. Under `tuning: defaults` each study is one run at the contender's own
  settings with seed s (a one-point grid).
- Reruns: the chosen setting of each workload and contender trained again with R seeds no
  study used, as a grid sweep over those seeds in
  FOLDER/sweeps/<workload>-<contender>-rerun-<a digest of the setting>/.
Sweeps resume where they stopped and reuse what finished (a killed worker's trial is run
again from the start; see optlab.sweep), so a comparison stopped anywhere goes on with the
same command. `--population K` and `--jobs N` are each sweep's.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from optlab.compare.spec import DEFAULTS, METRICS, ComparisonSpec, Contender, Workload
from optlab.errors import ConfigError, Interrupted, OptlabError

SEED_KEY = "trainer.seed"


@dataclass(frozen=True)
class Options:
    population: int | None = None  # runs trained at once per sweep worker (None: one at a time)
    jobs: int | None = None        # worker processes per sweep (None: one, in this process)
    sweeps: object = None          # sweep.run.RunOptions: heartbeat and grace (None: the sweep's defaults)


@dataclass(frozen=True)
class Planned:
    workload: str
    contender: str
    study: int | None  # the tuning study's number; None for the reruns
    spec: object       # the SweepSpec, validated

    @property
    def sweep_dir(self) -> Path:
        return sweep_folder(self.spec)


def sweep_name(workload: str, contender: str, study: int | None, chosen: list[str] = ()) -> str:
    """<workload>-<contender>-study<s>, or -rerun-<a digest of the chosen setting> for the reruns
    (a comparison whose choice changed, with more studies say, reruns its new choice apart)."""
    if study is not None:
        return f"{workload}-{contender}-study{study}"
    import hashlib

    return f"{workload}-{contender}-rerun-" + hashlib.sha256(" ".join(chosen).encode()).hexdigest()[:8]


def sweep_folder(sweep_spec) -> Path:
    """Where optlab puts a sweep: its base's trainer.out_dir / sweeps / its study name."""
    out = next(o.split("=", 1)[1] for o in reversed(sweep_spec.base) if o.startswith("trainer.out_dir="))
    return Path(out) / "sweeps" / sweep_spec.study


def rerun_seeds(spec: ComparisonSpec) -> list[int]:
    """Seeds no tuning study trained with (study s trains with seed s)."""
    first = spec.protocol.studies
    return list(range(first, first + spec.protocol.rerun_seeds))


def _common(w: Workload, c: Contender, folder: Path) -> list[str]:
    return [*w.base, *c.overrides, f"trainer.epochs={w.epochs}", "trainer.progress=false",
            f"trainer.out_dir={folder}"]


def _sweep(raw: dict, source: str, options: Options, probe: bool = True):
    """The SweepSpec; with probe, validated as optlab sweep validates one (base and space
    composed), which the studies of one workload and contender, alike but for the seed, need once."""
    from optlab.sweep.build import validate
    from optlab.sweep.spec import check_settings, spec_from_dict

    raw = {**raw, "pruner": "none", "seeds": 1, "jobs": options.jobs, "population": options.population}
    sweep_spec = spec_from_dict(raw, source=source)
    if probe:
        validate(sweep_spec)
    else:
        check_settings(sweep_spec)
    return sweep_spec


def plan_tuning(spec: ComparisonSpec, folder: Path, options: Options) -> list[Planned]:
    """Every tuning sweep, composed and probed (so a bad key stops here, before any run)."""
    from optlab.sweep.build import merge_overrides

    planned = []
    for w in spec.workloads:
        for c in spec.contenders:
            for s in range(spec.protocol.studies):
                common = _common(w, c, folder)
                raw = {"study": sweep_name(w.name, c.name, s), "metric": w.metric, "direction": METRICS[w.metric]}
                if spec.protocol.tuning == DEFAULTS:
                    raw.update(sampler="grid", trials=1, seed=s, base=common,
                               space={SEED_KEY: {"type": "categorical", "choices": [s]}})
                else:
                    raw.update(sampler=c.sampler or spec.protocol.tuning, trials=spec.protocol.trials, seed=s,
                               base=merge_overrides(common, [f"{SEED_KEY}={s}"]), space=c.space)
                sweep_spec = _sweep(raw, f"{spec.name}: {w.name}, {c.name}", options, probe=s == 0)
                planned.append(Planned(w.name, c.name, s, sweep_spec))
    return planned


def plan_rerun(spec: ComparisonSpec, w: Workload, c: Contender, chosen: list[str], folder: Path,
               options: Options) -> Planned:
    """The reruns of one workload's and contender's chosen setting (its sampled overrides)."""
    from optlab.sweep.build import merge_overrides

    chosen = [o for o in chosen if o.split("=", 1)[0] != SEED_KEY]
    raw = {"study": sweep_name(w.name, c.name, None, chosen), "metric": w.metric, "direction": METRICS[w.metric],
           "sampler": "grid", "trials": spec.protocol.rerun_seeds, "seed": 0,
           "base": merge_overrides(_common(w, c, folder), chosen),
           "space": {SEED_KEY: {"type": "categorical", "choices": rerun_seeds(spec)}}}
    return Planned(w.name, c.name, None, _sweep(raw, f"{spec.name}: {w.name}, {c.name} reruns", options))


def run_sweeps(planned: list[Planned], label: str, how: Options) -> bool:
    """Run (or finish) each sweep to its budget; a signal stops the comparison at a step.
    Whether any trial finished here (False: every sweep was finished already)."""
    from optlab.sweep.run import RunOptions, run_workers, start_sweep

    options = how.sweeps or RunOptions()
    trained = False
    for i, p in enumerate(planned):
        print(f"{label} [{i + 1}/{len(planned)}] {p.spec.study}", file=sys.stderr, flush=True)
        before = _finished(p.sweep_dir)
        try:
            started = start_sweep(p.spec, options)
        except ConfigError as exc:  # a sweep of other settings there: this folder is another comparison's
            raise ConfigError(f"{exc} (optlab compare: --out DIR starts the comparison in another folder)") from None
        outcome = run_workers(started, options, on_rows=lambda rows: None)
        trained = trained or _finished(p.sweep_dir) > before
        if outcome.stopped is not None:
            raise outcome.stopped
        if outcome.code in (130, 143):
            raise Interrupted(outcome.code - 128)
        if outcome.code:
            error = OptlabError(f"sweep {started.sweep_dir}: a worker ended with exit code {outcome.code}")
            error.exit_code = outcome.code
            raise error
    return trained


def _finished(sweep_dir: Path) -> int:
    from optlab.sweep.outputs import read_trial_rows

    if not (sweep_dir / "trials.csv").is_file():
        return 0
    return sum(row.get("state") == "COMPLETE" for row in read_trial_rows(sweep_dir))
