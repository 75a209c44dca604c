"""What a report reads from sweeps: best-so-far, parameter importances per branch, log scales."""
from __future__ import annotations

import warnings

import pandas as pd

from optlab.report.load import Sweep
from optlab.sweep.storage import open_storage


def best_so_far(trials: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Completed trials in order with their value and the best value up to each."""
    if trials.empty or not {"number", "value"} <= set(trials.columns):
        return pd.DataFrame(columns=["number", "value", "best"])
    done = trials if "state" not in trials else trials[trials["state"] == "COMPLETE"]
    done = done[pd.to_numeric(done["value"], errors="coerce").notna()].sort_values("number")
    out = pd.DataFrame({"number": done["number"].astype(int), "value": done["value"].astype(float)})
    out["best"] = out["value"].cummax() if maximize else out["value"].cummin()
    return out.reset_index(drop=True)


def sweep_direction(sweep: Sweep, default: bool) -> bool:
    direction = str(sweep.meta.get("direction", "")).lower()
    return direction.startswith("max") if direction else default


def sweep_at(sweep: Sweep) -> str:
    """Which epoch the sweep's trial values are: sweep.json's `at` (a sweep that records none
    valued each run at its best epoch)."""
    return str(sweep.meta.get("at") or "best")


def sweeps_at(runs: pd.DataFrame, sweeps: list[Sweep]) -> str | None:
    """The one `at` of the sweeps that every run belongs to, so a report of a sweep shows the
    numbers the sweep ranked by; None when some run is outside a sweep or the sweeps differ."""
    ats = {sweep_at(s) for s in sweeps if (runs["sweep"] == s.study).any()}
    return ats.pop() if len(ats) == 1 and runs["sweep"].ne("").all() else None


ALL_TRIALS = "all trials"


_IMPORTANCES: dict[tuple, tuple[pd.DataFrame, list[str]]] = {}  # one report's PNG and page share a fit


def param_importances(sweep: Sweep) -> tuple[pd.DataFrame | None, list[str]]:
    """Optuna's parameter importances for the sweep's study, per branch of a conditional space
    (see branch_importances), or (None, why not). Computed once per process for the same
    complete trials (fANOVA takes seconds on hundreds of trials)."""
    if not sweep.meta.get("storage"):
        return None, [f"{sweep.study}: no storage in sweep.json, importances skipped"]
    import optuna

    try:
        study = load_study(sweep)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(complete) < 2:
            return None, [f"{sweep.study}: {len(complete)} complete trial(s), importances need 2 or more"]
        conditioning = conditioning_params(sweep.meta)
        key = (str(sweep.meta["storage"]), sweep.study, tuple((t.number, t.value) for t in complete),
               tuple(conditioning) if conditioning is not None else None)
        if key not in _IMPORTANCES:
            if len(_IMPORTANCES) >= 8:  # a report's sweeps, not every sweep a long-lived process reads
                _IMPORTANCES.pop(next(iter(_IMPORTANCES)))
            _IMPORTANCES[key] = branch_importances(complete, study.direction, conditioning)
        table, notes = _IMPORTANCES[key]
    except Exception as exc:  # any storage or evaluator failure costs the plot, not the report
        return None, [f"{sweep.study}: importances skipped ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"]
    return (table if not table.empty else None), [f"{sweep.study}: {note}" for note in notes]


def load_study(sweep: Sweep):
    """The sweep's Optuna study, opened read-only (never creates a file)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(str(sweep.meta["storage"]), existing_in=sweep.path)
    return optuna.load_study(study_name=sweep.study, storage=storage)


def intermediate_values(sweep: Sweep) -> tuple[pd.DataFrame | None, list[str]]:
    """Every trial's values as reported to the pruner, epoch by epoch (number, state, step,
    value), the values pruning judged; or (None, why not)."""
    if not sweep.meta.get("storage"):
        return None, [f"{sweep.study}: no storage in sweep.json, intermediate values skipped"]
    try:
        trials = load_study(sweep).trials
    except Exception as exc:  # a storage that cannot be read costs this view, not the report
        return None, [f"{sweep.study}: intermediate values skipped ({type(exc).__name__}: "
                      f"{' '.join(str(exc).split())[:160]})"]
    rows = [(t.number, t.state.name, step, value) for t in trials for step, value in sorted(t.intermediate_values.items())]
    if not rows:
        return None, [f"{sweep.study}: no trial reported intermediate values"]
    return pd.DataFrame(rows, columns=["number", "state", "step", "value"]), []


def conditioning_params(meta: dict) -> list[str] | None:
    """The space's parameters that others depend on (named in a `when`), or None when
    sweep.json records no space."""
    space = meta.get("space")
    if not isinstance(space, dict):
        return None
    named = (name for spec in space.values() if isinstance(spec, dict) for name in (spec.get("when") or {}))
    return list(dict.fromkeys(named))


def branch_importances(trials: list, direction, conditioning: list[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """fANOVA importances (seeded: a rerun draws the same plot) as rows (branch, param,
    importance, trials), each branch summing to 1. One branch, 'all trials', ranks the
    parameters every trial has (the conditioning choice among them). A conditional parameter
    exists only in its branch's trials, so it is ranked only there, against the parameters
    those trials share: one row set per value of the conditioning parameters
    (optimizer=adam, ...). Pooling them instead credits one branch's parameter with the
    variance between branches. Without a recorded space, conditional parameters are left out.
    A branch needs 2 complete trials and 2 varying parameters (one alone is 1 by definition)."""
    branches = {ALL_TRIALS: (trials, _shared_params(trials))}
    notes = []
    if conditioning is None:
        left_out = sorted({p for t in trials for p in t.params} - set(_set_in_all(trials)))
        if left_out:
            notes.append(f"left out {', '.join(left_out)}: set in some trials only, and sweep.json "
                         "has no space saying which parameter they depend on")
    else:
        by_choice: dict[str, list] = {}
        for trial in trials:
            label = ", ".join(f"{c}={trial.params[c]}" for c in conditioning if c in trial.params)
            by_choice.setdefault(label, []).append(trial)
        for label, members in by_choice.items() if len(by_choice) > 1 else ():
            branches[label] = (members, [p for p in _shared_params(members) if p not in conditioning])
    too_few = [label for label, (members, _) in branches.items() if len(members) < 2]
    one_param = [label for label, (members, params) in branches.items() if len(members) >= 2 and len(params) < 2]
    notes += [f"no importances for {', '.join(labels)}: {why}" for labels, why in
              ((too_few, "fewer than 2 complete trials"), (one_param, "fewer than 2 parameters vary")) if labels]
    parts = [_importance_rows(label, members, direction, params) for label, (members, params) in branches.items()
             if label not in too_few + one_param]
    columns = ["branch", "param", "importance", "trials"]
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)), notes


def _set_in_all(trials: list) -> list[str]:
    return [p for p in trials[0].params if all(p in t.params for t in trials)]


def _shared_params(trials: list) -> list[str]:
    """Parameters set in every one of these trials that take two or more values."""
    return [p for p in _set_in_all(trials) if len({repr(t.params[p]) for t in trials}) > 1]


def _importance_rows(branch: str, trials: list, direction, params: list[str]) -> pd.DataFrame:
    import optuna

    study = optuna.create_study(direction=direction)  # in memory: just this branch's trials
    study.add_trials(trials)
    with warnings.catch_warnings():  # "some regimes have < 2 trials": small sweeps always do
        warnings.simplefilter("ignore")
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=params)
    return pd.DataFrame({"branch": branch, "param": list(values), "importance": [float(v) for v in values.values()],
                         "trials": len(trials)})


def log_scaled(sweeps: list[Sweep], key: str) -> bool | None:
    """Whether the sweeps sampled config key `key` on a log scale (sweep.json's space), or
    None when no sweep samples it as a number (or they disagree)."""
    flags = {bool(spec.get("log", False)) for sweep in sweeps for name, spec in (sweep.meta.get("space") or {}).items()
             if isinstance(spec, dict) and spec.get("key", name) == key and spec.get("type") in ("float", "int")}
    return flags.pop() if len(flags) == 1 else None
