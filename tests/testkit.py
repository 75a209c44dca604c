"""What several test files share, imported as a plain module (`from testkit import ...`): the
CLI's command line, tiny sweep files and studies, and hand-written run and sweep folders
whose numbers are known. Fixtures are in conftest.py."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]  # the repository root

# ---------------------------------------------------------------- the optlab command

TINY = ["trainer.epochs=2", "trainer.progress=false"]


def optlab_executable() -> list[str]:
    """The installed console script next to this interpreter, else `python -m optlab`."""
    script = Path(sys.executable).with_name("optlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "optlab"]


def run_optlab(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("OPTLAB_DEBUG", None) if env is None or "OPTLAB_DEBUG" not in env else None
    return subprocess.run([*optlab_executable(), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


# ---------------------------------------------------------------- tiny sweeps

TINY_BASE = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "optimizer=sgd",
             "trainer.epochs=1", "trainer.progress=false"]


def write_sweep(tmp_path: Path, **fields) -> Path:
    """tmp_path/tiny.yaml: a sweep of study `tiny` over optimizer.lr, 2 random trials of one
    epoch each, writing under tmp_path/outputs; fields replace the file's keys."""
    body = {"metric": "val_acc", "sampler": "random", "pruner": "none", "trials": 2,
            "base": [*TINY_BASE, f"trainer.out_dir={tmp_path / 'outputs'}"],
            "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}}, **fields}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def tiny_spec(tmp_path: Path, trials: int):
    """The SweepSpec of study `unit`: random trials over optimizer.lr, writing under tmp_path/outputs."""
    from optlab.sweep.spec import spec_from_dict

    return spec_from_dict({"study": "unit", "trials": trials, "sampler": "random",
                           "base": [*TINY_BASE, f"trainer.out_dir={tmp_path / 'outputs'}"],
                           "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2}}})


def sweep_folder(tmp_path: Path, study: str = "tiny") -> Path:
    return tmp_path / "outputs" / "sweeps" / study


def read_rows(folder: Path) -> list[dict]:
    """A sweep folder's trials.csv, as strings."""
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def study_of(tmp_path: Path, name: str = "tiny", url: str | None = None):
    """The Optuna study of a sweep: in `url`, else in its sweep folder's study.db."""
    import optuna

    url = url or f"sqlite:///{sweep_folder(tmp_path, name) / 'study.db'}"
    return optuna.load_study(study_name=name, storage=url)


def finished(study) -> int:
    return sum(t.state.name == "COMPLETE" for t in study.trials)


# ---------------------------------------------------------------- hand-written run and sweep folders

T_975_DF1, T_975_DF2 = 12.706204736, 4.302652730  # Student's t, two-sided 95%, from a t table
METRIC_HEADER = "epoch,step,lr,batch_size,train_loss,train_acc,val_loss,val_acc,grad_norm,epoch_time_s,samples_per_s\n"


def config(optimizer: str = "adam", lr: float = 0.001, seed: int = 0, norm: str = "none") -> dict:
    opt = {"name": optimizer, "lr": lr, **({"momentum": 0.9} if optimizer == "sgd" else {"betas": [0.9, 0.999]})}
    return {"data": {"name": "digits"}, "model": {"name": "mlp", "width": 16}, "norm": {"name": norm},
            "optimizer": opt, "augment": {"none": {}},
            "trainer": {"epochs": 3, "seed": seed, "name": f"{optimizer}-{seed}", "out_dir": "/somewhere"}}


def write_run(root: Path, name: str, cfg: dict, val_accs: list[float], status: str = "completed") -> Path:
    """A run folder as optlab train writes it: config.yaml, metrics.csv, summary.json."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [f"{e},{10 * (e + 1)},{cfg['optimizer']['lr']},64,{1 - a},{a},{1 - a},{a},1.0,0.1,1000\n"
            for e, a in enumerate(val_accs)]
    (folder / "metrics.csv").write_text(METRIC_HEADER + "".join(rows))
    finite = [a for a in val_accs if math.isfinite(a)]
    summary = {"status": status, "run_dir": str(folder), "seed": cfg["trainer"]["seed"], "device": "cpu",
               "epochs_done": len(val_accs), "best_val_acc": max(finite) if finite else None,
               "final_val_acc": val_accs[-1] if finite else None, "wall_time_s": 1.5}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def make_sweep(root: Path, trials: int = 6, storage_kind: str = "journal") -> Path:
    """A sweep folder per the contract: a real Optuna study plus trials.csv, sweep.json, runs/."""
    import optuna
    import pandas as pd
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = root / "sweeps" / "demo"
    folder.mkdir(parents=True)
    if storage_kind == "journal":
        url, storage = str(folder / "study.log"), JournalStorage(JournalFileBackend(str(folder / "study.log")))
    else:
        url = storage = f"sqlite:///{folder / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="demo", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: -(math.log10(t.suggest_float("optimizer.lr", 1e-4, 1, log=True)) + 2) ** 2
                   + 0.01 * t.suggest_int("model.width", 8, 64), n_trials=trials)
    rows = []
    for t in study.trials:
        run = write_run(folder / "runs", f"trial{t.number}", config(lr=t.params["optimizer.lr"], seed=0), [0.5])
        rows.append({"number": t.number, "state": t.state.name, "status": "completed", "value": t.value,
                     "value_seed0": t.value, "duration_s": 1.0, "param.optimizer.lr": t.params["optimizer.lr"],
                     "param.model.width": t.params["model.width"], "run_dirs": str(run), "error": ""})
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    (folder / "sweep.json").write_text(json.dumps({"study": "demo", "storage": url, "metric": "val_acc",
                                                   "direction": "maximize", "trials": trials}))
    return folder


# ---------------------------------------------------------------- a user's option files

def user_option(config_dir: Path, group: str, name: str, text: str) -> str:
    """config_dir/<group>/<name>.yaml holding text; returns config_dir for --config-dir."""
    (config_dir / group).mkdir(exist_ok=True)
    (config_dir / group / f"{name}.yaml").write_text(text)
    return str(config_dir)


# ---------------------------------------------------------------- a signal at an exact step

def sigterm_at_step(monkeypatch, step: int):
    """The training loop receives SIGTERM during its step number `step` (counted from 1 over
    the run, resumes not counted), at the gradient clipping that every step calls: the loop
    then stops at that step's end as it would on a real signal. Returns the call that puts
    the plain clipping back."""
    import signal

    import optlab.training.solo as solo

    original, calls = solo.clip_gradients, [0]

    def clip_then_signal(*args, **kwargs):
        calls[0] += 1
        if calls[0] == step:
            signal.raise_signal(signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(solo, "clip_gradients", clip_then_signal)
    return lambda: monkeypatch.setattr(solo, "clip_gradients", original)
