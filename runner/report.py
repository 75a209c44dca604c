"""Run and sweep folders -> pandas tables: find, load, group, aggregate over seeds.

Pure data: nothing here prints or plots (report_cli.py does the terminal and files,
plots.py the pictures). Reading is built for thousands of runs: config.yaml through
PyYAML's C loader, metrics.csv through the csv module, one long curves table at the end.

Edge cases, stated once:
- A folder holding any of config.yaml / summary.json / metrics.csv is a run candidate; it
  is skipped, with the reason, when config.yaml or summary.json is missing or unreadable
  or metrics.csv is malformed (no epoch column, a short or long row, a non-number). A torn
  last metrics line (no newline: the run was writing it) is dropped with a note, as
  runner.metrics.read_rows does.
- Statistics (mean, std, CI) use the runs whose status is in `stats_over` (default:
  completed) and whose value is a number; every other run is still counted by status.
- Runs with the same config (bookkeeping keys aside) and the same seed are duplicates, not
  replicates: each such set counts once (n = distinct seeds per config), with the mean of
  its values (on CPU they are identical; on a GPU they differ by float rounding only).
- Epochs to target look at every replicate of the group, whatever its status; one whose
  curve never reaches the target (or that has no metrics.csv) counts as missed.
- The metric is read on the validation split, at the final epoch or the best one; a test
  number in summary.json (test_acc, measured once on the best-validation epoch's weights)
  is shown beside it, never used to choose.
"""
from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import yaml

from runner.config import GROUPS, flatten, is_bookkeeping
from runner.errors import ConfigError, DataError
from runner.metrics import complete_lines, process_alive

RUN_FILES = ("config.yaml", "summary.json", "metrics.csv")
SWEEP_FILES = ("trials.csv", "sweep.json")
STATUSES = ("completed", "diverged", "pruned", "failed", "interrupted", "running")
SEED_KEY = "trainer.seed"  # replicates differ in it: never a grouping key, always part of a run's identity
SUMMARY_SKIP = ("run_dir",)
ALL = "all"  # the one group's label when there are no grouping keys

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Skipped:
    path: Path
    reason: str


@dataclass
class Sweep:
    path: Path
    study: str
    meta: dict                 # sweep.json ({} when absent)
    trials: pd.DataFrame       # trials.csv (empty when absent)


@dataclass
class Collection:
    runs: pd.DataFrame                                 # one row per run
    curves: pd.DataFrame                               # one row per (run_dir, metrics row)
    config_keys: list[str]                             # dotted config keys and group choices
    sweeps: list[Sweep] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Metric:
    name: str                  # as asked (--metric)
    column: str                # the runs column holding each run's value
    curve: str | None          # the metrics.csv column behind it, for curves and targets
    maximize: bool
    at: str | None = None      # "final" or "best" epoch; None for a summary number of no epoch
    test_column: str | None = None  # summary's test-split number beside it (test_acc), if runs have it

    @property
    def label(self) -> str:
        """What the number is: 'val_acc (validation, final epoch)'."""
        split = split_of(self.curve or self.name)
        where = ", ".join(p for p in (split, f"{self.at} epoch" if self.at else "") if p)
        return f"{self.curve or self.name} ({where})" if where else self.name


def split_of(column: str) -> str:
    """The data split a metric is measured on, from its name ('' when it names none)."""
    for prefix, split in (("val_", "validation"), ("train_", "training"), ("test_", "test")):
        if column.removeprefix("best_").removeprefix("final_").startswith(prefix):
            return split
    return ""


# ---------------------------------------------------------------- finding folders

def find_folders(paths: Iterable[Path]) -> tuple[list[tuple[Path, Path]], list[Path], list[Skipped]]:
    """(run folder, the PATH it was found under) pairs, sweep folders, and missing PATHs."""
    runs, sweeps, skipped, seen = [], [], [], set()
    for source in map(Path, paths):
        if not source.is_dir():
            skipped.append(Skipped(source, "no such folder"))
            continue
        for folder, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            names = set(filenames)
            if names & set(SWEEP_FILES):
                sweeps.append(Path(folder))
            if names & set(RUN_FILES):
                dirnames.clear()  # a run folder holds no runs
                key = os.path.realpath(folder)
                if key not in seen:
                    seen.add(key)
                    runs.append((Path(folder), source))
    return runs, sweeps, skipped


# ---------------------------------------------------------------- one run folder

def read_config(path: Path) -> dict:
    try:
        tree = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise DataError("missing config.yaml (half-written or not an optlab run)") from None
    except yaml.YAMLError as exc:
        raise DataError(f"config.yaml is not valid YAML ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(tree, dict):
        raise DataError("config.yaml is not a mapping of config keys")
    return tree


def read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("missing summary.json (half-written or not an optlab run)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"summary.json is not valid JSON ({exc})") from None
    if not isinstance(summary, dict) or "status" not in summary:
        raise DataError("summary.json has no status")
    return summary


def read_metrics(path: Path) -> tuple[dict[str, list[float]], bool]:
    """metrics.csv as {column: values} and whether a torn last line was dropped.
    Raises DataError when the table is malformed."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}, False
    lines, torn = complete_lines(text)
    rows = list(csv.reader(lines))
    if not rows or "epoch" not in rows[0]:
        raise DataError("metrics.csv has no header with an epoch column")
    header = rows[0]
    table: dict[str, list[float]] = {name: [] for name in header}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"metrics.csv line {number} has {len(row)} fields, expected {len(header)}")
        for name, cell in zip(header, row):
            table[name].append(_number(cell, f"metrics.csv line {number}, {name}"))
    return table, torn


def _number(cell: str, where: str) -> float:
    if cell == "":
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise DataError(f"{where}: {cell!r} is not a number") from None


def flat_config(tree: dict) -> dict:
    """Dotted keys -> leaf values, plus one column per config group naming its choice
    (`optimizer` = adam; `augment` = flip+crop for a multi-option group)."""
    choices = {}
    for group in GROUPS:
        node = tree.get(group)
        if group == "trainer" or not isinstance(node, dict):
            continue
        if "name" in node:
            choices[group] = str(node["name"])
        elif all(isinstance(v, dict) for v in node.values()):
            choices[group] = "+".join(node) or "none"
    return {**choices, **{key: _cell(value) for key, value in flatten(tree)}}


def _cell(value):
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def load_run(folder: Path) -> tuple[dict, dict[str, list[float]], bool]:
    """(record: summary scalars + config, metrics columns, torn last line)."""
    config = flat_config(read_config(folder / "config.yaml"))
    summary = read_summary(folder / "summary.json")
    metrics, torn = read_metrics(folder / "metrics.csv")
    record = {k: v for k, v in summary.items() if k not in SUMMARY_SKIP and not isinstance(v, (dict, list))}
    if record.get("seed") is None:
        record["seed"] = config.get("trainer.seed")
    if record.get("status") == "running" and process_alive(summary) is False:
        record.update(status="interrupted", reason="process gone: resume with optlab train --resume")
    record.update(config)
    return record, metrics, torn


# ---------------------------------------------------------------- many folders

def load(paths: Iterable[Path]) -> Collection:
    """Every run under these PATHs (run, sweep or parent folders); unreadable ones skipped."""
    run_folders, sweep_folders, skipped = find_folders(paths)
    records, curve_parts, notes, config_keys = [], [], [], {}
    for folder, source in run_folders:
        try:
            record, metrics, torn = load_run(folder)
        except DataError as exc:
            skipped.append(Skipped(folder, str(exc)))
            continue
        if torn:
            notes.append(f"{folder}: dropped a torn last line of metrics.csv")
        config_keys.update(dict.fromkeys(k for k in record if "." in k or k in GROUPS))
        run_dir = str(folder)
        records.append({"run_dir": run_dir, "run": folder.name, "source": str(source), **record})
        if metrics:
            curve_parts.append((run_dir, metrics))
    sweeps = []
    for folder in sweep_folders:
        try:
            sweeps.append(load_sweep(folder))
        except DataError as exc:
            skipped.append(Skipped(folder, str(exc)))
    runs = _runs_frame(records)
    _tag_sweep_runs(runs, sweeps)
    return Collection(runs, _curves_frame(curve_parts), list(config_keys), sweeps, skipped, notes)


def _runs_frame(records: list[dict]) -> pd.DataFrame:
    runs = pd.DataFrame.from_records(records)
    for column in ("run_dir", "run", "source", "status", "seed"):
        if column not in runs:
            runs[column] = pd.Series(dtype=object)
    runs["status"] = runs["status"].fillna("unknown").astype(str)
    seeds = pd.to_numeric(runs["seed"], errors="coerce")
    if (seeds.dropna() % 1 == 0).all():
        runs["seed"] = seeds.astype("Int64")
    runs["sweep"], runs["trial"] = "", np.nan
    return runs


def _curves_frame(parts: list[tuple[str, dict[str, list[float]]]]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({"run_dir": pd.Series(dtype=object), "epoch": pd.Series(dtype=float)})
    columns: dict[str, list] = {"run_dir": []}
    total = 0
    for run_dir, metrics in parts:
        length = len(metrics["epoch"])
        for name, values in metrics.items():
            columns.setdefault(name, [math.nan] * total).extend(values)
        for name in columns:
            if name != "run_dir" and name not in metrics:
                columns[name].extend([math.nan] * length)
        columns["run_dir"].extend([run_dir] * length)
        total += length
    return pd.DataFrame(columns)


# ---------------------------------------------------------------- sweeps

def load_sweep(folder: Path) -> Sweep:
    meta = {}
    if (folder / "sweep.json").exists():
        try:
            meta = json.loads((folder / "sweep.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"sweep.json is not valid JSON ({exc})") from None
    trials = pd.DataFrame()
    if (folder / "trials.csv").exists():
        try:
            trials = pd.read_csv(folder / "trials.csv")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"trials.csv is malformed ({' '.join(str(exc).split())})") from None
    return Sweep(folder, str(meta.get("study") or folder.name), meta, trials)


def _tag_sweep_runs(runs: pd.DataFrame, sweeps: list[Sweep]) -> None:
    """Mark runs found inside a sweep folder with its study and (from trials.csv) trial number."""
    if runs.empty:
        return
    real = runs["run_dir"].map(os.path.realpath)
    for sweep in sweeps:
        root = os.path.realpath(sweep.path) + os.sep
        inside = real.str.startswith(root)
        runs.loc[inside, "sweep"] = sweep.study
        trial_of = _trial_by_folder_name(sweep.trials)
        runs.loc[inside, "trial"] = runs.loc[inside, "run"].map(trial_of)


def _trial_by_folder_name(trials: pd.DataFrame) -> dict[str, float]:
    if trials.empty or not {"number", "run_dirs"} <= set(trials.columns):
        return {}
    found = {}
    for number, run_dirs in zip(trials["number"], trials["run_dirs"].fillna("")):
        for run_dir in str(run_dirs).split(";"):
            if run_dir.strip():
                found[Path(run_dir.strip()).name] = float(number)
    return found


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


ALL_TRIALS = "all trials"


def param_importances(sweep: Sweep) -> tuple[pd.DataFrame | None, list[str]]:
    """Optuna's parameter importances for the sweep's study, per branch of a conditional space
    (see branch_importances), or (None, why not)."""
    storage_url = sweep.meta.get("storage")
    if not storage_url:
        return None, [f"{sweep.study}: no storage in sweep.json, importances skipped"]
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(str(storage_url), sweep.path)
        study = optuna.load_study(study_name=sweep.study, storage=storage)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(complete) < 2:
            return None, [f"{sweep.study}: {len(complete)} complete trial(s), importances need 2 or more"]
        table, notes = branch_importances(complete, study.direction, conditioning_params(sweep.meta))
    except Exception as exc:  # any storage or evaluator failure costs the plot, not the report
        return None, [f"{sweep.study}: importances skipped ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"]
    return (table if not table.empty else None), [f"{sweep.study}: {note}" for note in notes]


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


def open_storage(url: str, folder: Path):
    """An Optuna storage for this URL: an RDB URL (a relative sqlite path is also looked for
    in the sweep folder) or a journal file path. Never creates a missing file."""
    if url.startswith("sqlite:///"):
        path = _existing(Path(url[len("sqlite:///"):]), folder)
        return f"sqlite:///{path}"
    if "://" in url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(_existing(Path(url), folder))))


def _existing(path: Path, folder: Path) -> Path:
    for candidate in (path, folder / path, folder / path.name):
        if candidate.is_file():
            return candidate
    raise DataError(f"storage file {path} not found (also looked in {folder})")


# ---------------------------------------------------------------- the metric

def resolve_metric(name: str, collection: Collection, direction: str = "auto", at: str | None = None) -> Metric:
    """--metric NAME --at final|best: a metrics.csv column (val_acc) read at each run's final
    epoch (default) or its best one (summary's final_/best_<name>, else the curve's), or a
    summary number (best_val_acc, wall_time_s) used as is. Adds that per-run column to
    collection.runs when it has to compute it."""
    runs, curves = collection.runs, collection.curves
    maximize = _maximize(name, direction)
    if name in curves.columns and name not in ("run_dir", "epoch"):
        at = at or "final"
        column = _curve_value_column(collection, name, at, maximize)
        return Metric(name, column, name, maximize, at, _test_column(name, runs))
    if name in runs and pd.api.types.is_numeric_dtype(runs[name]):
        base = name.removeprefix("best_").removeprefix("final_")
        named_at = name[:-len(base) - 1] if base != name else None
        if at is not None and at != named_at:
            which = f" of the {named_at} epoch; use --metric {base} --at {at}" if named_at else ""
            raise ConfigError(f"--at {at}: --metric {name} is a summary number{which}")
        curve = base if base in curves.columns else None
        return Metric(name, name, curve, _maximize(name, direction), named_at, _test_column(base, runs))
    choices = sorted({c for c in curves.columns if c not in ("run_dir", "epoch")}
                     | {c for c in runs.columns if c not in collection.config_keys and pd.api.types.is_numeric_dtype(runs[c])})
    raise ConfigError(f"--metric {name}: not a metrics.csv column or summary number; choose from: {', '.join(choices)}")


def _curve_value_column(collection: Collection, name: str, at: str, maximize: bool) -> str:
    """Fill runs[f'{at}_{name}'] (summary's number where it has one, else the curve's)."""
    runs, curves = collection.runs, collection.curves
    column = f"{at}_{name}"
    if at == "final":  # the last row as written, NaN included (a run that diverged there)
        from_curve = runs["run_dir"].map(curves.groupby("run_dir", sort=False).tail(1).set_index("run_dir")[name])
        same_sense = True
    else:
        from_curve = runs["run_dir"].map(curves.groupby("run_dir")[name].agg("max" if maximize else "min"))
        same_sense = maximize == _maximize(name, "auto")  # summary's best_* uses the usual sense
    if column in runs and same_sense:
        runs[column] = pd.to_numeric(runs[column], errors="coerce").fillna(from_curve)
    else:
        column = column if column not in runs else f"{column}_{'max' if maximize else 'min'}"
        runs[column] = from_curve
    return column


def _test_column(name: str, runs: pd.DataFrame) -> str | None:
    """test_acc for val_acc: the summary number measured on the test split, when runs have one."""
    if not name.startswith("val_"):
        return None
    column = "test_" + name.removeprefix("val_")
    if column in runs and pd.to_numeric(runs[column], errors="coerce").notna().any():
        return column
    return None


def _maximize(name: str, direction: str) -> bool:
    if direction in ("max", "maximize"):
        return True
    if direction in ("min", "minimize"):
        return False
    return not any(word in name for word in ("loss", "time", "error"))


# ---------------------------------------------------------------- grouping keys

def differing_keys(runs: pd.DataFrame, config_keys: list[str]) -> list[str]:
    """Config keys with two or more values among the runs that have them (a key missing
    from older runs does not count; bookkeeping keys such as the seed are excluded), less
    keys that merely follow a group's choice (adam's betas, sgd's momentum)."""
    keys = [k for k in config_keys if k in runs and k != SEED_KEY and not is_bookkeeping(k) and _distinct(runs[k]) > 1]
    groups = [k for k in keys if k in GROUPS]
    return [k for k in keys if not any(k.startswith(f"{g}.") and _follows(runs, g, k) for g in groups)]


def pooled_keys(runs: pd.DataFrame, config_keys: list[str], keys: list[str]) -> pd.Series:
    """Per group label: the config keys (seed and bookkeeping aside) that still vary among
    its runs, comma-separated ('' when the group's runs differ only in the seed)."""
    labels = group_labels(runs, keys)
    candidates = differing_keys(runs, config_keys)  # a key that varies inside a group varies overall
    return pd.Series({label: ",".join(k for k in differing_keys(frame, candidates) if k not in keys)
                      for label, frame in runs[candidates].groupby(labels, sort=False)}, dtype=object)


def replicate_ids(runs: pd.DataFrame, config_keys: list[str], keys: list[str] = ()) -> pd.Series:
    """One id per distinct (config, seed): runs that share it are duplicates of one replicate.
    Grouping keys that are not config keys (--compare's source) also tell runs apart."""
    identity = [k for k in config_keys if k in runs and not is_bookkeeping(k)]
    identity += [k for k in ("seed", *keys) if k in runs and k not in identity]
    cells = runs[identity].astype(str)  # lists are JSON text already; NaN hashes alike
    return pd.Series(pd.util.hash_pandas_object(cells, index=False).to_numpy(), index=runs.index)


def merge_duplicates(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per replicate (frame needs a `replicate` column): its first run's cells, the
    mean of `columns` over its duplicates (identical on CPU, so the mean is any of them;
    float rounding apart on a GPU), and `folders`, how many runs it stands for."""
    merged = frame.drop_duplicates("replicate").set_index("replicate")
    values = frame[columns].apply(pd.to_numeric, errors="coerce").groupby(frame["replicate"], sort=False)
    merged[columns] = values.mean()
    merged["folders"] = values.size()
    return merged.reset_index()


def _distinct(values: pd.Series) -> int:
    return values.dropna().astype(str).nunique()


def _follows(runs: pd.DataFrame, group: str, key: str) -> bool:
    return bool((runs.groupby(group, dropna=False)[key].agg(_distinct) <= 1).all())


def numeric_keys(runs: pd.DataFrame, keys: list[str]) -> list[str]:
    out = []
    for key in keys:
        values = pd.to_numeric(runs[key], errors="coerce") if key in runs else pd.Series(dtype=float)
        is_bool = key in runs and runs[key].dropna().map(lambda v: isinstance(v, bool)).any()
        if not is_bool and values.notna().sum() and values.dropna().nunique() > 1:
            out.append(key)
    return out


def check_keys(keys: list[str], collection: Collection) -> None:
    missing = [k for k in keys if k not in collection.runs.columns]
    if missing:
        known = ", ".join(k for k in collection.config_keys if "." not in k) or "none"
        raise ConfigError(f"--by {','.join(missing)}: not a config key of these runs "
                          f"(config groups: {known}; dotted keys such as optimizer.lr also work)")


def group_labels(runs: pd.DataFrame, keys: list[str]) -> pd.Series:
    """One readable label per run: 'optimizer=adam, norm=batch' (or 'all')."""
    if not keys:
        return pd.Series(ALL, index=runs.index)
    parts = [runs[k].map(lambda v, k=k: f"{k}={_show(v)}") for k in keys]
    return parts[0].str.cat(parts[1:], sep=", ") if len(parts) > 1 else parts[0]


def _show(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------- statistics

def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df (possibly fractional) degrees of freedom.
    scipy.special when installed (it imports in a fraction of scipy.stats' time), else
    bisection on the CDF below."""
    try:
        from scipy.special import stdtrit
    except ImportError:
        return _t_quantile_bisect(p, df)
    return float(stdtrit(df, p))


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with df degrees of freedom."""
    try:
        from scipy.special import stdtr
    except ImportError:
        return 1.0 - _t_cdf(x, df)
    return float(stdtr(df, -x))


def _t_cdf(x: float, df: float) -> float:
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + x * x))
    return 1.0 - tail if x >= 0 else tail


def _t_quantile_bisect(p: float, df: float) -> float:
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (Lentz's method)."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + numerator / (c if abs(c) > 1e-300 else 1e-300)
        f *= c * d
        if abs(1.0 - c * d) < 1e-14:
            break
    return front * (f - 1.0)


def describe(values: pd.Series, confidence: float = 0.95) -> dict:
    """n, mean, std (n-1), standard error and the t confidence interval of the mean."""
    values = pd.Series(values, dtype=float).dropna()
    n = len(values)
    mean = values.mean() if n else math.nan
    std = values.std(ddof=1) if n > 1 else math.nan
    sem = std / math.sqrt(n) if n > 1 else math.nan
    half = t_quantile(0.5 + confidence / 2, n - 1) * sem if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "sem": sem, "ci_low": mean - half, "ci_high": mean + half}


def welch(a: dict, b: dict, confidence: float = 0.95) -> dict:
    """Difference of means a - b with Welch's CI (unequal variances) and two-sided p-value."""
    diff = a["mean"] - b["mean"]
    if a["n"] < 2 or b["n"] < 2:
        return {"diff": diff, "diff_ci_low": math.nan, "diff_ci_high": math.nan, "df": math.nan, "p_value": math.nan}
    va, vb = a["std"] ** 2 / a["n"], b["std"] ** 2 / b["n"]
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "diff_ci_low": diff, "diff_ci_high": diff, "df": math.nan,
                "p_value": 1.0 if diff == 0 else 0.0}
    df = (va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    return {"diff": diff, "diff_ci_low": diff - half, "diff_ci_high": diff + half, "df": df,
            "p_value": 2 * t_sf(abs(diff) / se, df)}


def epochs_to_target(curves: pd.DataFrame, column: str, target: float, maximize: bool) -> pd.Series:
    """Per run_dir: epochs trained (epoch index + 1) when `column` first reached the target;
    runs that never reached it are absent."""
    reached = curves[curves[column] >= target] if maximize else curves[curves[column] <= target]
    return reached.groupby("run_dir")["epoch"].min() + 1


# ---------------------------------------------------------------- the group table

def aggregate(collection: Collection, keys: list[str], metric: Metric, target: float | None = None,
              stats_over: tuple[str, ...] = ("completed",)) -> pd.DataFrame:
    """One row per group: rank, keys, which metric, n (distinct seeds used) and runs (folders),
    duplicates merged, counts by status, stats of the metric (and of its test number), best/worst
    seed, epochs to target, and `varies`: the other keys pooled in the group. Sorted best
    first; groups without a usable value last, unranked."""
    runs = collection.runs.assign(group=group_labels(collection.runs, keys),
                                  replicate=replicate_ids(collection.runs, collection.config_keys, keys))
    reached = None
    if target is not None:
        if metric.curve is None:
            raise ConfigError(f"--target: --metric {metric.name} has no per-epoch curve to test against")
        reached = epochs_to_target(collection.curves, metric.curve, target, metric.maximize)
    varies = pooled_keys(collection.runs, collection.config_keys, keys)
    rows = [{**_group_row(frame, keys, metric, reached, stats_over), "varies": varies[label]}
            for label, frame in runs.groupby("group", sort=False)]
    table = pd.DataFrame(rows)
    table = table.sort_values("mean", ascending=not metric.maximize, na_position="last", kind="stable")
    ranked = table["mean"].notna()
    table.insert(0, "rank", pd.array([pd.NA] * len(table), dtype="Int64"))
    table.loc[ranked, "rank"] = range(1, int(ranked.sum()) + 1)
    return table.reset_index(drop=True)


def _group_row(frame: pd.DataFrame, keys: list[str], metric: Metric, reached: pd.Series | None,
               stats_over: tuple[str, ...]) -> dict:
    used = frame[frame["status"].isin(stats_over) & frame[metric.column].notna()]
    columns = [metric.column, *([metric.test_column] if metric.test_column else [])]
    values = merge_duplicates(used[["replicate", "seed", *columns]], columns)
    stats = describe(values[metric.column])
    row = {"group": frame["group"].iloc[0], **{k: frame[k].iloc[0] for k in keys},
           "metric": metric.name, "at": metric.at or "", "n": stats.pop("n"), "runs": len(frame),
           "duplicates": len(used) - len(values)}
    for status in STATUSES:
        row[status] = int((frame["status"] == status).sum())
    row["other_status"] = int((~frame["status"].isin(STATUSES)).sum())
    row.update(stats)
    row.update(_best_and_worst(values, metric))
    if metric.test_column:
        test = describe(values[metric.test_column])
        row.update({f"test_{k}": v for k, v in test.items() if k != "sem"})
    if reached is not None:
        row.update(_target_row(frame, reached))
    return row


def _target_row(frame: pd.DataFrame, reached: pd.Series) -> dict:
    """Epochs to target per replicate (duplicates: their mean; reached when any of them did)."""
    epochs = frame["run_dir"].map(reached).groupby(frame["replicate"], sort=False).mean()
    return {"target_reached": int(epochs.notna().sum()), "target_missed": int(epochs.isna().sum()),
            "epochs_to_target": epochs.mean()}


def _best_and_worst(used: pd.DataFrame, metric: Metric) -> dict:
    if used.empty:
        return {"best_seed": None, "best": math.nan, "worst_seed": None, "worst": math.nan}
    values = used[metric.column].astype(float)
    best, worst = (values.idxmax(), values.idxmin()) if metric.maximize else (values.idxmin(), values.idxmax())
    return {"best_seed": used.at[best, "seed"], "best": values[best],
            "worst_seed": used.at[worst, "seed"], "worst": values[worst]}


def compare(collection: Collection, sources: tuple[str, str], keys: list[str], metric: Metric,
            stats_over: tuple[str, ...] = ("completed",)) -> pd.DataFrame:
    """Side by side per group: A's and B's n, mean and CI, and A - B with Welch's CI."""
    runs = collection.runs.assign(group=group_labels(collection.runs, keys),
                                  replicate=replicate_ids(collection.runs, collection.config_keys))
    used = runs[runs["status"].isin(stats_over) & runs[metric.column].notna()]
    rows = []
    for group in runs["group"].drop_duplicates():
        sides = [describe(merge_duplicates(used[(used["group"] == group) & (used["source"] == s)],
                                           [metric.column])[metric.column]) for s in sources]
        row = {"group": group}
        for name, side in zip("AB", sides):
            row.update({f"{name}_{k}": v for k, v in side.items() if k != "sem"})
        rows.append({**row, **welch(*sides)})
    return pd.DataFrame(rows)


def group_curves(collection: Collection, keys: list[str], column: str) -> pd.DataFrame:
    """Per group and epoch: mean, min and max of `column` over the group's replicates
    (duplicates averaged first), and n, how many replicates have that epoch."""
    curves = collection.curves
    if column not in curves:
        return pd.DataFrame(columns=["group", "epoch", "mean", "min", "max", "n"])
    runs = collection.runs
    group_of = dict(zip(runs["run_dir"], group_labels(runs, keys)))
    replicate_of = dict(zip(runs["run_dir"], replicate_ids(runs, collection.config_keys, keys)))
    joined = curves[["run_dir", "epoch", column]].assign(group=curves["run_dir"].map(group_of),
                                                         replicate=curves["run_dir"].map(replicate_of))
    per_replicate = joined.groupby(["group", "replicate", "epoch"], sort=False)[column].mean()
    table = per_replicate.groupby(level=["group", "epoch"], sort=True).agg(["mean", "min", "max", "count"])
    return table.rename(columns={"count": "n"}).reset_index()
