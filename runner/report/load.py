"""Run and sweep folders -> pandas tables: find them, read them, skip the unreadable ones."""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from optlab import safe_yaml
from optlab.config.compose import GROUPS, flatten
from optlab.config.catalogue import missing_defaults
from optlab.errors import ConfigError, DataError, choose_from
from optlab.runs.files import complete_lines
from optlab.runs.folder import process_alive
from optlab.runs.status import Status
from optlab.sweep.outputs import read_trials_table, trial_of_run_folder

RUN_FILES = ("config.yaml", "summary.json", "metrics.csv")


SWEEP_FILES = ("trials.csv", "sweep.json")


STATUSES = (Status.COMPLETED, Status.DIVERGED, Status.PRUNED, Status.FAILED, Status.INTERRUPTED, Status.RUNNING)


def chosen_statuses(text: str | list[str]) -> tuple[str, ...]:
    """The statuses whose runs enter a report's statistics (--stats-over: comma-separated,
    or a list); an unknown one is a ConfigError naming the choices."""
    chosen = tuple(s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip())
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown or not chosen:
        given = text if isinstance(text, str) else ",".join(text)
        raise ConfigError(f"--stats-over {given}: {choose_from((unknown or [given])[0], STATUSES)}")
    return chosen


SUMMARY_SKIP = ("run_dir",)


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


def read_config(path: Path) -> dict:
    try:
        tree = safe_yaml.load_file(path, DataError, where=path.name)
    except FileNotFoundError:
        raise DataError("missing config.yaml (half-written or not an optlab run)") from None
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
    except RecursionError:
        raise DataError("summary.json is nested too deeply to be a summary") from None
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
    except UnicodeDecodeError as exc:
        raise DataError(f"metrics.csv is not a text file (byte {exc.start} is not UTF-8)") from None
    lines, torn = complete_lines(text)
    try:
        rows = list(csv.reader(lines))
    except csv.Error as exc:  # a NUL byte, a quote left open
        raise DataError(f"metrics.csv is not a CSV table ({exc})") from None
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
    (`optimizer` = adam; `augment` = flip+crop for a multi-option group). A key the run's
    options define but its config.yaml lacks (written before the key existed) has its default."""
    choices = {}
    for group in GROUPS:
        node = tree.get(group)
        if group == "trainer" or not isinstance(node, dict):
            continue
        if "name" in node:
            choices[group] = str(node["name"])
        elif all(isinstance(v, dict) for v in node.values()):
            choices[group] = "+".join(node) or "none"
    leaves = {**missing_defaults(tree), **dict(flatten(tree))}
    return {**choices, **{key: _cell(value) for key, value in leaves.items()}}


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
    if record.get("status") == Status.RUNNING and process_alive(summary) is False:
        record.update(status=Status.INTERRUPTED, reason="process gone: resume with optlab train --resume")
    record.update(config)
    return record, metrics, torn


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
        except OSError as exc:  # a file this user may not read, a folder where a file should be
            skipped.append(Skipped(folder, f"unreadable: {exc.strerror}: {exc.filename}"))
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


def load_sweep(folder: Path) -> Sweep:
    meta = {}
    if (folder / "sweep.json").exists():
        try:
            meta = json.loads((folder / "sweep.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"sweep.json is not valid JSON ({exc})") from None
    return Sweep(folder, str(meta.get("study") or folder.name), meta, read_trials_table(folder))


def _tag_sweep_runs(runs: pd.DataFrame, sweeps: list[Sweep]) -> None:
    """Mark runs found inside a sweep folder with its study and (from trials.csv) trial number."""
    if runs.empty:
        return
    real = runs["run_dir"].map(os.path.realpath)
    for sweep in sweeps:
        root = os.path.realpath(sweep.path) + os.sep
        inside = real.str.startswith(root)
        runs.loc[inside, "sweep"] = sweep.study
        runs.loc[inside, "trial"] = runs.loc[inside, "run"].map(trial_of_run_folder(sweep.trials))
