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
from dataclasses import dataclass
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


# ---------------------------------------------------------------- figures as a reader sees them

def rendered(fig):
    """The figure drawn on an Agg canvas, as saving it would: its renderer, for extents."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def legend_collisions(fig) -> list[str]:
    """What the figure's legends cover: any axes' data area, its axes' tick labels and labels, its title."""
    renderer = rendered(fig)
    covered = []
    for legend in [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends):
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            parts = {"axes": ax.get_window_extent(renderer), "x axis labels": ax.xaxis.get_tightbbox(renderer),
                     "y axis labels": ax.yaxis.get_tightbbox(renderer)}
            if ax.get_title():
                parts["title"] = ax.title.get_window_extent(renderer)
            covered += [f"legend covers the {name} of {ax.get_title()!r}" for name, part in parts.items()
                        if part is not None and box.overlaps(part)]
    return covered


def visible_ticks(axis) -> list[float]:
    """The major tick positions inside the axis' view."""
    low, high = sorted(axis.get_view_interval())
    return [t for t in axis.get_majorticklocs() if low - 1e-9 <= t <= high + 1e-9]


def looks(ax) -> list[tuple]:
    """(line style, marker, fill style) of every labelled line: what tells curves apart beyond colour."""
    return [(line.get_linestyle(), line.get_marker(), line.get_fillstyle()) for line in ax.get_lines()
            if not line.get_label().startswith("_")]


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


def make_generated_sweep(root: Path, trials: int, seeds: int = 1, epochs: int = 3) -> Path:
    """root/sweeps/gen: a sweep of `trials` trials over a log-scale optimizer.lr and
    optimizer.weight_decay, written as optlab writes one (a real Optuna journal study with the
    epochs' intermediate values, trials.csv, sweep.json, one run folder per trial and seed).
    Every 5th trial is pruned after its first epoch; the rest complete. Values follow lr
    (best near 1e-2) so that brushing lr picks known runs."""
    import random

    import optuna
    import pandas as pd
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = root / "sweeps" / "gen"
    folder.mkdir(parents=True)
    draw = random.Random(0)
    log_float = optuna.distributions.FloatDistribution
    space = {"optimizer.lr": (1e-4, 1.0), "optimizer.weight_decay": (1e-6, 1e-2)}
    frozen, rows = [], []
    for number in range(trials):
        params = {k: 10 ** draw.uniform(math.log10(lo), math.log10(hi)) for k, (lo, hi) in space.items()}
        pruned = number % 5 == 4
        per_seed = []
        for seed in range(seeds):
            peak = 0.95 - 0.1 * abs(math.log10(params["optimizer.lr"]) + 2) + 0.01 * seed
            accs = [round(peak - 0.3 / (e + 1), 6) for e in range(1 if pruned else epochs)]
            cfg = config(lr=params["optimizer.lr"], seed=seed)
            cfg["optimizer"]["weight_decay"] = params["optimizer.weight_decay"]
            per_seed.append((write_run(folder / "runs", f"trial{number:04d}-seed{seed}", cfg, accs,
                                       status="pruned" if pruned else "completed"), accs))
        curve = [sum(a[e] for _, a in per_seed) / seeds for e in range(len(per_seed[0][1]))]
        frozen.append(optuna.trial.create_trial(
            params=params, distributions={k: log_float(lo, hi, log=True) for k, (lo, hi) in space.items()},
            value=None if pruned else curve[-1], intermediate_values=dict(enumerate(curve)),
            state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE))
        rows.append({"number": number, "state": "PRUNED" if pruned else "COMPLETE",
                     "status": "pruned" if pruned else "completed", "value": None if pruned else curve[-1],
                     **{f"param.{k}": v for k, v in params.items()},
                     "run_dirs": ";".join(f"runs/{p.name}" for p, _ in per_seed), "error": ""})
    journal = folder / "study.journal"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="gen", direction="maximize",
                                storage=JournalStorage(JournalFileBackend(str(journal))))
    study.add_trials(frozen)
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    meta = {"study": "gen", "storage": f"journal:{journal}", "metric": "val_acc", "direction": "maximize",
            "trials": trials, "seeds": seeds,
            "space": {k: {"type": "float", "low": lo, "high": hi, "log": True} for k, (lo, hi) in space.items()}}
    (folder / "sweep.json").write_text(json.dumps(meta))
    return folder


# ---------------------------------------------------------------- a page in a real browser

@dataclass
class OpenedPage:
    page: object                # playwright's Page
    errors: list[str]           # console errors and uncaught exceptions
    requests: list[str]         # every request to anything but a file (each one blocked)
    ready_ms: float             # navigation start to every chart drawn, as the page measured it


def open_page(browser, path: Path, width: int = 1280, height: int = 900) -> OpenedPage:
    """path's page in a new tab with every request but file:// ones blocked, once every chart
    has drawn (the page marks its body data-ready)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors, requests = [], []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else (requests.append(route.request.url), route.abort()))
    page.goto(Path(path).resolve().as_uri())
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    return OpenedPage(page, errors, requests, float(page.evaluate("document.body.dataset.readyMs")))


def undrawn_charts(page) -> list[str]:
    """Ids of the page's charts that did not draw: a plotly chart without an SVG holding a
    trace, parallel coordinates without lines."""
    return page.evaluate("""() => [...document.querySelectorAll('div.chart, svg.parcoords')].filter((c) =>
        c.dataset.drawn !== '1' || (c.matches('div.chart') ? !c.querySelector('svg.main-svg .trace, svg.main-svg .bars')
                                                        : !c.querySelector('.lines path'))).map((c) => c.id)""")


def table_rows(page, table_id: str) -> list[dict]:
    """The rows a table shows: {column: data-value (the exact number or text), ...}."""
    return page.evaluate("""(id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) =>
        Object.fromEntries([...tr.querySelectorAll('[data-col]')].map((s) =>
            [s.dataset.col, s.dataset.value === undefined ? null : s.dataset.value])))""", table_id)


def one_line(result, code: int, *words: str) -> None:
    """A finished command that exited `code` with one error line on stderr holding each word."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optlab: error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
