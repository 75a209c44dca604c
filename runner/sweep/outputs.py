"""What a sweep leaves in outputs/sweeps/<study>/: trials.csv, best.yaml and sweep.json.
This module is trials.csv's one owner: its columns, its writer, and the readers that refine,
rerun and report use.

trials.csv has one row per trial (trials dropped as `surplus` and queued retries that never
started are left out): number, state (COMPLETE/PRUNED/FAIL/RUNNING), status (completed,
pruned, diverged, failed; `running` while it runs; `interrupted` for a trial stopped by
SIGTERM or by its worker's death, whose configuration was queued again), value (the
objective, COMPLETE trials only: the mean over seeds of value_seed<k>, each seed's run at its
best or its final epoch as the sweep's `at` says, which sweep.json records), value_seed<k>,
duration_s, param.<name> per space parameter, run_dirs (';'-separated run folders, relative to the sweep folder; a failed or
interrupted trial's run folder is there too), error and job (the Slurm job, ARRAYJOB_TASK, that
ran the trial; empty outside Slurm). It is rewritten atomically, under a
file lock so that the last writer has the newest view of the study.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from optlab.errors import ConfigError, DataError
from optlab.runs.files import write_atomic
from optlab.runs.status import Status
from optlab.sweep.space import format_value
from optlab.sweep.spec import Param, SweepSpec, metric_label
from optlab.sweep.study import trial_status

TRIALS_CSV = "trials.csv"


RUN_DIRS_SEPARATOR = ";"


def param_column(name: str) -> str:
    return f"param.{name}"


def columns(spec: SweepSpec) -> list[str]:
    return (["number", "state", "status", "value"] + [f"value_seed{k}" for k in range(spec.seeds)]
            + ["duration_s"] + [param_column(p.name) for p in spec.space] + ["run_dirs", "error", "job"])


def trial_rows(study, spec: SweepSpec) -> list[dict]:
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        status = trial_status(t)
        if status in (Status.SURPLUS, Status.WAITING):
            continue
        rows.append(_row(t, status, spec))
    return rows


def _row(t, status: str, spec: SweepSpec) -> dict:
    seeds = t.user_attrs.get("seed_values", [])
    duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
    row = {"number": t.number, "state": t.state.name, "status": status,
           "value": t.value if t.state.name == "COMPLETE" else None,
           **{f"value_seed{k}": seeds[k] if k < len(seeds) else None for k in range(spec.seeds)},
           "duration_s": None if duration is None else round(duration, 3),
           **{param_column(p.name): format_value(t.params[p.name]) if p.name in t.params else None
              for p in spec.space},
           "run_dirs": RUN_DIRS_SEPARATOR.join(t.user_attrs.get("run_dirs", [])), "error": _error(t, status),
           "job": t.user_attrs.get("job", "")}
    return row


def _error(t, status: str) -> str:
    if status == Status.INTERRUPTED and not t.user_attrs.get("error"):
        return "its worker stopped without finishing it (no heartbeat); queued again"
    return t.user_attrs.get("error", "") or ""


def csv_text(rows: list[dict], spec: SweepSpec) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(spec), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


@contextmanager
def folder_lock(sweep_dir: Path):
    with open(Path(sweep_dir) / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def best_trial(study, spec: SweepSpec):
    done = [t for t in study.get_trials(deepcopy=False) if trial_status(t) == Status.COMPLETED and t.value is not None]
    if not done:
        return None
    pick = max if spec.direction == "maximize" else min
    return pick(done, key=lambda t: (t.value, -t.number) if spec.direction == "maximize" else (t.value, t.number))


def best_yaml(trial, spec: SweepSpec) -> str:
    overrides = [*spec.base, *trial.user_attrs.get("overrides", [])]
    lines = [f"# best of sweep {spec.study}: {metric_label(spec.metric, spec.at)} {trial.value:.6g} "
             f"(trial {trial.number}); "
             f"a list of overrides for optlab train"]
    if spec.scheduler == "pbt":  # the member's values changed as it trained
        lines.append("# PBT: the best member's initial values; its whole schedule is best_schedule.yaml "
                     "(optlab train --replay best_schedule.yaml)")
    return "\n".join(lines + [f"- {_yaml_item(o)}" for o in overrides]) + "\n"


def _yaml_item(text: str) -> str:
    """The override as a YAML list item: plain when it reads back unchanged, else quoted."""
    import yaml

    try:
        plain_ok = yaml.safe_load(f"- {text}") == [text]
    except yaml.YAMLError:
        plain_ok = False
    return text if plain_ok else json.dumps(text)


def write_outputs(study, spec: SweepSpec, sweep_dir: Path) -> list[dict]:
    """Rewrite trials.csv and best.yaml from the study; returns the rows."""
    with folder_lock(sweep_dir):
        for name in (TRIALS_CSV, "best.yaml"):  # under the lock no one else writes them: any temp file is a dead writer's
            for stale in Path(sweep_dir).glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
        rows = trial_rows(study, spec)
        write_atomic(Path(sweep_dir) / TRIALS_CSV, csv_text(rows, spec), fault_point="sweep.trials_csv")
        best = best_trial(study, spec)
        if best is not None:
            write_atomic(Path(sweep_dir) / "best.yaml", best_yaml(best, spec))
    return rows


def write_sweep_json(spec: SweepSpec, sweep_dir: Path, storage_url: str) -> None:
    from optlab.sweep.storage import hide_password

    data = spec.to_json()
    data["storage"] = hide_password(storage_url)
    launched = read_launcher_record(sweep_dir)
    if launched:  # the Slurm jobs of earlier submissions (slurm.record_submission) stay listed
        data["launcher"] = launched
    order = ["study", "storage", "metric", "at", "direction", "sampler", "pruner", "trials", "seeds", "space", "base"]
    ordered = {k: data[k] for k in order} | {k: v for k, v in data.items() if k not in order}
    write_atomic(Path(sweep_dir) / "sweep.json", json.dumps(ordered, indent=2) + "\n")


def read_sweep_json(sweep_dir: Path) -> dict:
    """What sweep.json records of the sweep's definition (where it ran and the file it came
    from left out), for a spec made from it again."""
    try:
        meta = json.loads((Path(sweep_dir) / "sweep.json").read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{sweep_dir}: not a sweep folder (no readable sweep.json)") from None
    return {k: v for k, v in meta.items() if k not in ("storage", "source", "launcher")}


def read_launcher_record(sweep_dir: Path) -> dict:
    """sweep.json's `launcher` record (Slurm: the jobs submitted), {} when none."""
    try:
        return dict(json.loads((Path(sweep_dir) / "sweep.json").read_text()).get("launcher") or {})
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {}


# ---------------------------------------------------------------- reading trials.csv

def read_trial_rows(sweep_dir: Path) -> list[dict]:
    """trials.csv as written: one dict of strings per trial (for refine and rerun)."""
    path = Path(sweep_dir) / TRIALS_CSV
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; --refine needs a sweep folder with trials.csv") from None


def read_trials_table(sweep_dir: Path):
    """trials.csv as a pandas table with numeric columns typed (for report); empty when the
    sweep has not written one."""
    import pandas as pd

    path = Path(sweep_dir) / TRIALS_CSV
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"trials.csv is malformed ({' '.join(str(exc).split())})") from None


def best_rows(rows: list[dict], direction: str, top: int) -> list[dict]:
    """The `top` completed trials' rows, best first."""
    done = [r for r in rows if r.get("state") == "COMPLETE" and r.get("status") == Status.COMPLETED and r.get("value")]
    done.sort(key=lambda r: float(r["value"]), reverse=direction == "maximize")
    return done[:top]


def assignment_of_row(space: tuple[Param, ...], row: dict) -> dict:
    """The values a trials.csv row records (parameters its trial did not sample left out)."""
    values = {p.name: _cell(p, row.get(param_column(p.name), "")) for p in space}
    return {name: value for name, value in values.items() if value is not _MISSING}


_MISSING = object()


def _cell(p: Param, text: str) -> Any:
    if text == "":
        return _MISSING
    if p.kind == "categorical":
        return next((c for c in p.choices if format_value(c) == text or str(c) == text), _MISSING)
    return int(float(text)) if p.kind == "int" else float(text)


def trial_of_run_folder(table) -> dict[str, float]:
    """Run folder name -> its trial's number, from read_trials_table's table."""
    if table.empty or not {"number", "run_dirs"} <= set(table.columns):
        return {}
    found = {}
    for number, run_dirs in zip(table["number"], table["run_dirs"].fillna("")):
        for run_dir in str(run_dirs).split(RUN_DIRS_SEPARATOR):
            if run_dir.strip():
                found[Path(run_dir.strip()).name] = float(number)
    return found
