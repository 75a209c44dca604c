"""The Optuna study: sampler, pruner, what a study is (its fingerprint and budget), and counting
finished and running trials."""
from __future__ import annotations

import json
import os
import uuid
import warnings
from dataclasses import asdict, dataclass, replace

from optlab.errors import ConfigError
from optlab.runs.status import Status
from optlab.sweep.space import grid_space
from optlab.sweep.spec import SweepSpec

HEARTBEAT_S = 5  # seconds between heartbeats of a running trial


GRACE_S = 20     # a RUNNING trial without a heartbeat for this long belongs to a dead worker


FINISHED = "finished"


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*GridSampler.*")
    # population workers ask and tell, keeping their trials' heartbeats themselves
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_study(spec: SweepSpec, storage, sampler=None, pruner=None):
    import optuna

    return optuna.create_study(study_name=spec.study, storage=storage, direction=spec.direction,
                               sampler=sampler, pruner=pruner, load_if_exists=True)


FINGERPRINT_ATTR, BUDGET_ATTR, SWEEP_ATTR = "optlab.fingerprint", "optlab.trials", "optlab.sweep"


def fingerprint(spec: SweepSpec, base_cfg) -> dict:
    """What defines a study's trials, as flat key -> JSON text: the composed base config
    (keys that do not change what a run learns aside), the space, the metric and direction,
    the seeds, sampler and pruner. The budget, workers, timeout and storage are not in it.
    `at` joined it later: a study recorded without it valued each run at its best epoch."""
    from optlab.config.compose import as_plain, flatten, is_bookkeeping

    settings = {"metric": spec.metric, "at": spec.at, "direction": spec.direction, "seeds": spec.seeds, "sampler": spec.sampler,
                "pruner": spec.pruner, "grid_points": spec.grid_points,
                "space": {p.name: p.raw() for p in spec.space}}
    if spec.scheduler != "none":  # a study from before schedulers keeps its fingerprint
        settings.update(scheduler=spec.scheduler, pbt=asdict(spec.pbt), population=spec.population)
    config = {k: v for k, v in flatten(as_plain(base_cfg)) if not is_bookkeeping(k)}
    flat = {**dict(flatten(settings)), **{f"base {k}": v for k, v in config.items()}}
    return {k: json.dumps(v, sort_keys=True) for k, v in flat.items()}


def claim_study(study, spec: SweepSpec, base_cfg, where: str) -> None:
    """A new study takes this sweep's fingerprint; an existing one must have the same, so a
    rerun (or another machine's worker) never mixes trials of other settings into it."""
    new = fingerprint(spec, base_cfg)
    old = study.user_attrs.get(FINGERPRINT_ATTR)
    if old is not None and "at" not in old:
        old = {**old, "at": json.dumps("best")}  # what its trials' values were
    if old is None:
        study.set_user_attr(FINGERPRINT_ATTR, new)
        study.set_user_attr(SWEEP_ATTR, spec.source_text or json.dumps(spec.to_json(), indent=2))
        study.set_metric_names([spec.metric])
        return
    changed = [f"{k} {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}"
               for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if changed:
        shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise ConfigError(f"study '{spec.study}' ({where}) was created with other settings: {shown}. "
                          f"Start a new study with --study NEW_NAME, or rerun with its settings "
                          f"(--extend N adds N trials to it)")


def settle_budget(study, spec: SweepSpec, extend: int | None) -> SweepSpec:
    """The spec this run works with: its budget the command's, or with --extend N the study's
    last budget plus N (the one place a spec gets another budget). Recorded on the study for
    the next --extend."""
    trials = spec.trials
    if extend is not None:
        recorded = study.user_attrs.get(BUDGET_ATTR)
        if recorded is None:
            raise ConfigError(f"--extend {extend}: study '{spec.study}' has no budget to extend yet; run it first")
        trials = int(recorded) + extend
    study.set_user_attr(BUDGET_ATTR, trials)
    return replace(spec, trials=trials)


def make_sampler(spec: SweepSpec, seed: int | None):
    import optuna.samplers as s

    if spec.sampler == "random":
        return s.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return grid_sampler_class()(grid_space(spec), seed=seed)
    if spec.sampler == "tpe":
        startup = max(3, min(10, spec.trials // 4))
        return s.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, group=True,
                            constant_liar=True)
    if spec.sampler == "gp":
        return s.GPSampler(seed=seed)
    if spec.sampler == "qmc":
        return s.QMCSampler(seed=seed, scramble=True)
    try:
        import cmaes  # noqa: F401  (CmaEsSampler needs it)
    except ImportError:
        raise ConfigError("sampler 'cmaes' needs the cmaes package: pip install cmaes") from None
    return s.CmaEsSampler(seed=seed)


def make_pruner(spec: SweepSpec):
    import optuna.pruners as p

    return {
        "none": lambda: p.NopPruner(),
        "median": lambda: p.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
        "successive_halving": lambda: p.SuccessiveHalvingPruner(),
        "hyperband": lambda: p.HyperbandPruner(min_resource=1),
    }[spec.pruner]()


def trial_status(trial) -> str:
    """completed | diverged | pruned | failed | running | interrupted | surplus | waiting."""
    from optuna.trial import TrialState

    status = trial.user_attrs.get("status")
    if trial.state == TrialState.COMPLETE:
        return status if status in (Status.COMPLETED, Status.DIVERGED) else Status.COMPLETED
    if trial.state == TrialState.PRUNED:
        return Status.PRUNED
    if trial.state == TrialState.RUNNING:
        return Status.RUNNING
    if trial.state == TrialState.WAITING:
        return Status.WAITING
    return status if status in (Status.FAILED, Status.SURPLUS) else Status.INTERRUPTED


SESSION_ENV = "OPTLAB_SWEEP_SESSION"
CONFIG_FAILURE_ATTR = "optlab.config_error_in"  # the sweep session whose configuration failed the trial


def new_sweep_session() -> None:
    """A new id for this sweep command, made when it starts; its workers inherit it
    (spawned processes and Slurm tasks get its environment)."""
    os.environ[SESSION_ENV] = uuid.uuid4().hex[:12]


def sweep_session() -> str:
    """The id of the sweep command this process works for."""
    if not os.environ.get(SESSION_ENV):
        new_sweep_session()
    return os.environ[SESSION_ENV]


def record_failure(trial, exc: BaseException) -> None:
    """A trial failed by a configuration error (a device this machine lacks, a value the
    first batch refuses) is marked with this command's session: it counts against this
    command's budget (a broken configuration does not retry forever), never against the
    budget of a later command, which may have fixed it."""
    if isinstance(exc, ConfigError):
        trial.set_user_attr(CONFIG_FAILURE_ATTR, sweep_session())


def is_finished(trial) -> bool:
    """Whether the trial counts against the budget (see record_failure)."""
    status = trial_status(trial)
    if status == Status.FAILED and trial.user_attrs.get(CONFIG_FAILURE_ATTR) not in (None, sweep_session()):
        return False
    return status in (Status.COMPLETED, Status.DIVERGED, Status.PRUNED, Status.FAILED)


@dataclass
class Tally:
    finished: int
    running: int


def tally(study) -> Tally:
    trials = study.get_trials(deepcopy=False)
    return Tally(sum(is_finished(t) for t in trials), sum(trial_status(t) == Status.RUNNING for t in trials))


def ahead_counts(study, numbers: list[int]) -> dict[int, int]:
    """Per trial number, the finished or running trials numbered before it (a trial runs only
    while that is below the budget), from one read of the study."""
    counted = sorted(t.number for t in study.get_trials(deepcopy=False)
                     if is_finished(t) or trial_status(t) == Status.RUNNING)
    return {n: sum(1 for c in counted if c < n) for n in numbers}


def grid_sampler_class():
    """Optuna's GridSampler, without its after_trial stop: that calls study.stop(), which
    works only inside study.optimize, and population workers ask and tell instead. Every
    worker checks is_exhausted before it asks for another trial."""
    import optuna

    class WorkerGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            pass

    return WorkerGridSampler
