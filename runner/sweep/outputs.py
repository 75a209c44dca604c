"""What a sweep leaves in outputs/sweeps/<study>/: trials.csv, best.yaml and sweep.json.

trials.csv has one row per trial (trials dropped as `surplus` and queued retries that never
started are left out): number, state (COMPLETE/PRUNED/FAIL/RUNNING), status (completed,
pruned, diverged, failed; `running` while it runs; `interrupted` for a trial stopped by
SIGTERM or by its worker's death, whose configuration was queued again), value (the
objective, COMPLETE trials only), value_seed<k>, duration_s, param.<name> per space
parameter, run_dirs (';'-separated run folders, relative to the sweep folder; a failed or
interrupted trial's run folder is there too) and error. It is rewritten atomically, under a
file lock so that the last writer has the newest view of the study.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
from contextlib import contextmanager
from pathlib import Path

from runner.runs.files import write_atomic
from runner.sweep.space import format_value
from runner.sweep.spec import SweepSpec
from runner.sweep.study import trial_status


def columns(spec: SweepSpec) -> list[str]:
    return (["number", "state", "status", "value"] + [f"value_seed{k}" for k in range(spec.seeds)]
            + ["duration_s"] + [f"param.{p.name}" for p in spec.space] + ["run_dirs", "error"])


def trial_rows(study, spec: SweepSpec) -> list[dict]:
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        status = trial_status(t)
        if status in ("surplus", "waiting"):
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
           **{f"param.{p.name}": format_value(t.params[p.name]) if p.name in t.params else None for p in spec.space},
           "run_dirs": ";".join(t.user_attrs.get("run_dirs", [])), "error": _error(t, status)}
    return row


def _error(t, status: str) -> str:
    if status == "interrupted" and not t.user_attrs.get("error"):
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
    done = [t for t in study.get_trials(deepcopy=False) if trial_status(t) == "completed" and t.value is not None]
    if not done:
        return None
    pick = max if spec.direction == "maximize" else min
    return pick(done, key=lambda t: (t.value, -t.number) if spec.direction == "maximize" else (t.value, t.number))


def best_yaml(trial, spec: SweepSpec) -> str:
    overrides = spec.base + list(trial.user_attrs.get("overrides", []))
    lines = [f"# best of sweep {spec.study}: {spec.metric}={trial.value:.6g} (trial {trial.number}); "
             f"a list of overrides for optlab train"]
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
        for name in ("trials.csv", "best.yaml"):  # under the lock no one else writes them: any temp file is a dead writer's
            for stale in Path(sweep_dir).glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
        rows = trial_rows(study, spec)
        write_atomic(Path(sweep_dir) / "trials.csv", csv_text(rows, spec), fault_point="sweep.trials_csv")
        best = best_trial(study, spec)
        if best is not None:
            write_atomic(Path(sweep_dir) / "best.yaml", best_yaml(best, spec))
    return rows


def write_sweep_json(spec: SweepSpec, sweep_dir: Path, storage_url: str) -> None:
    from runner.sweep.storage import hide_password

    data = spec.to_json()
    data["storage"] = hide_password(storage_url)
    order = ["study", "storage", "metric", "direction", "sampler", "pruner", "trials", "seeds", "space", "base"]
    ordered = {k: data[k] for k in order} | {k: v for k, v in data.items() if k not in order}
    write_atomic(Path(sweep_dir) / "sweep.json", json.dumps(ordered, indent=2) + "\n")
