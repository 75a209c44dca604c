"""Sweep files, sampling, refinement and the worker loop, in this process (fast)."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import signal
from pathlib import Path

import optuna
import pytest
import yaml

from runner.cli.app import main
from runner.errors import DataError, Interrupted, Pruned
from runner.sweep.build import build_spec
from runner.sweep.objective import Objective, PruneReporter
from runner.sweep.outputs import assignment_of_row, best_rows, read_trial_rows
from runner.sweep.space import refine_space, suggest, to_overrides
from runner.sweep.spec import parse_space, read_sweep_file, spec_from_dict
from runner.sweep.storage import default_storage, open_storage
from runner.sweep.study import open_study, trial_status
from runner.sweep.workers import Worker

REPO = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted((REPO / "sweeps").glob("*.yaml"))
TINY_BASE = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "optimizer=sgd",
             "trainer.epochs=1", "trainer.progress=false"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # in-process sweeps size torch threads from it


def write_sweep(tmp_path: Path, **fields) -> Path:
    body = {"metric": "val_acc", "sampler": "random", "pruner": "none", "trials": 2,
            "base": [*TINY_BASE, f"trainer.out_dir={tmp_path / 'outputs'}"],
            "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}}, **fields}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


# ---------------------------------------------------------------- sweep files

@pytest.mark.parametrize("path", SWEEP_FILES, ids=[p.stem for p in SWEEP_FILES])
def test_every_sweep_file_composes_with_a_sample_of_its_space(path):
    from runner.config.compose import compose

    spec = build_spec(str(path))  # validated: base + probe samples of the space composed
    study = optuna.create_study(direction=spec.direction, sampler=optuna.samplers.RandomSampler(seed=1))
    overrides = to_overrides(spec.space, suggest(study.ask(), spec.space))
    cfg = compose([*spec.base, *overrides])
    assert cfg.data.name == "digits"


def test_example_sweeps_are_the_four_the_issue_names():
    assert {p.stem for p in SWEEP_FILES} >= {"lr_wd", "optimizers", "init_norm", "batch_lr"}


@pytest.mark.parametrize("change, expected", [
    ({"space": {"optimizer.nope": {"type": "float", "low": 0.1, "high": 1.0}}}, "optimizer.nope"),
    ({"space": {"optimizer.lr": {"type": "float", "low": 1.0, "high": 0.1}}}, "low (1.0) > high (0.1)"),
    ({"space": {"optimizer.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}, "needs low > 0"),
    ({"sampler": "annealing"}, "sampler 'annealing': unknown"),
    ({"pruner": "sometimes"}, "pruner 'sometimes': unknown"),
    ({"space": {"norm": ["none", "sparkle"]}}, "norm=sparkle: unknown norm"),
    ({"space": {"optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "adam"}}}},
     "not an earlier parameter"),
])
def test_bad_sweep_input_exits_2_with_one_line(tmp_path, capsys, change, expected):
    code = main(["sweep", str(write_sweep(tmp_path, **change))])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and expected in err, err


def test_unreachable_storage_exits_2(tmp_path, capsys):
    code = main(["sweep", str(write_sweep(tmp_path)), "--storage", "postgresql://nobody:secret@127.0.0.1:1/optlab"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "cannot open the storage" in err and "secret" not in err


# ---------------------------------------------------------------- sampling

def test_conditional_parameters_follow_their_condition():
    spec = spec_from_dict(read_sweep_file(REPO / "sweeps" / "optimizers.yaml")[0])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        assignment = suggest(study.ask(), spec.space)
        family = assignment["optimizer"]
        seen.add(family)
        assert ("optimizer.momentum" in assignment) == (family in ("momentum", "nesterov"))
        overrides = to_overrides(spec.space, assignment)
        assert sum(o.startswith("optimizer.lr=") for o in overrides) == 1
    assert len(seen) >= 4


def test_space_types_and_grid_values():
    space = parse_space({"model.depth": {"type": "int", "low": 1, "high": 3},
                         "optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                         "norm": ["none", "batch"]})
    assert [p.kind for p in space] == ["int", "float", "categorical"]
    assert space[0].values_for_grid(4) == [1, 2, 3]
    assert space[1].values_for_grid(3) == pytest.approx([1e-3, 1e-2, 1e-1])


def test_refine_narrows_in_log_space_around_the_top_trials():
    spec = spec_from_dict({"study": "s", "space": {
        "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "norm": ["none", "batch", "layer"]}})
    rows = [{"state": "COMPLETE", "status": "completed", "value": str(v), "param.optimizer.lr": str(lr),
             "param.norm": norm} for v, lr, norm in
            [(0.97, 0.01, "batch"), (0.96, 0.02, "batch"), (0.95, 0.03, "none"), (0.2, 0.9, "layer"),
             (0.1, 1e-4, "layer")]]
    rows.append({"state": "COMPLETE", "status": "diverged", "value": "0.99", "param.optimizer.lr": "1.0",
                 "param.norm": "layer"})
    best = [assignment_of_row(spec.space, r) for r in best_rows(rows, spec.direction, 3)]
    lr, norm = refine_space(spec.space, best)
    assert 1e-4 < lr.low <= 0.01 and 0.03 <= lr.high < 1.0
    assert math.log(lr.high / lr.low) < 0.5 * math.log(1.0 / 1e-4)
    assert norm.choices == ("none", "batch")


# ---------------------------------------------------------------- trials in this process

def sweep_folder(tmp_path: Path, study: str = "tiny") -> Path:
    return tmp_path / "outputs" / "sweeps" / study


def read_rows(folder: Path) -> list[dict]:
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_records_a_diverged_trial_as_worst_and_goes_on(tmp_path, capsys):
    path = write_sweep(tmp_path, sampler="grid", trials=5,
                       space={"optimizer.lr": {"type": "categorical", "choices": [0.5, 1.0e+9]}})
    assert main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    folder = sweep_folder(tmp_path)
    assert Path(out[-1]).resolve() == folder.resolve()
    rows = {r["param.optimizer.lr"]: r for r in read_rows(folder)}
    assert len(rows) == 2  # the grid has two points
    assert rows["1000000000.0"]["status"] == "diverged" and float(rows["1000000000.0"]["value"]) == 0.0
    good = rows["0.5"]
    assert good["state"] == "COMPLETE" and float(good["value"]) > 0.3
    summary = json.loads((folder / good["run_dirs"] / "summary.json").read_text())
    assert summary["status"] == "completed" and float(good["value_seed0"]) == pytest.approx(summary["best_val_acc"])
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert "optimizer.lr=0.5" in best and "optimizer=sgd" in best
    meta = json.loads((folder / "sweep.json").read_text())
    assert {"study", "storage", "metric", "direction", "sampler", "pruner", "trials", "seeds", "space", "base"} <= set(meta)


def test_rerun_continues_to_the_budget_instead_of_adding_to_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, seeds=2)
    assert main(["sweep", str(path), "--trials", "1"]) == 0
    assert main(["sweep", str(path), "--trials", "1"]) == 0
    assert len(read_rows(sweep_folder(tmp_path))) == 1
    assert main(["sweep", str(path), "--trials", "2"]) == 0
    rows = read_rows(sweep_folder(tmp_path))
    assert [int(r["number"]) for r in rows] == [0, 1]
    for r in rows:
        assert len(r["run_dirs"].split(";")) == 2  # one run folder per seed
        assert float(r["value"]) == pytest.approx((float(r["value_seed0"]) + float(r["value_seed1"])) / 2)


def tiny_spec(tmp_path: Path, trials: int):
    return spec_from_dict({"study": "unit", "trials": trials, "sampler": "random",
                           "base": [*TINY_BASE, f"trainer.out_dir={tmp_path / 'outputs'}"],
                           "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.2}}})


def test_worker_waits_for_a_running_peer_instead_of_starting_past_the_budget(tmp_path):
    spec = tiny_spec(tmp_path, trials=2)
    folder = sweep_folder(tmp_path, "unit")
    folder.mkdir(parents=True)
    url = default_storage(folder)
    study = open_study(spec, open_storage(url))
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    peer = study.ask()  # RUNNING in "another worker"
    waits = []

    def sleep(seconds):  # the peer finishes while we wait
        waits.append(seconds)
        study.tell(peer, 0.8)

    Worker(spec, folder, url, sleep=sleep).run()
    assert len(waits) == 1
    assert len(study.get_trials()) == 2  # nothing started past the budget


def test_trial_of_a_dead_worker_is_failed_by_heartbeat_and_its_configuration_retried(tmp_path):
    import sqlalchemy

    spec = tiny_spec(tmp_path, trials=1)
    folder = sweep_folder(tmp_path, "unit")
    folder.mkdir(parents=True)
    url = default_storage(folder)
    storage = open_storage(url, heartbeat=1, grace=1)
    study = open_study(spec, storage)
    dead = study.ask()
    lr = dead.suggest_float("optimizer.lr", 0.05, 0.2)
    dead.set_user_attr("status", "running")
    storage.record_heartbeat(dead._trial_id)
    with sqlalchemy.create_engine(url).begin() as db:  # the clock moves on: its last beat is old
        db.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')"))

    Worker(spec, folder, url, heartbeat=1, grace=1).run()
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trial_status(trials[0]) == "interrupted"
    assert trials[1].params["optimizer.lr"] == lr and trials[1].user_attrs["retry_of"] == 0


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_pruned_trial_stops_keeps_its_rows_and_says_pruned(tmp_path):
    spec = tiny_spec(tmp_path, trials=1)
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    study.optimize(Objective(spec, sweep_folder(tmp_path, "unit")), n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED" and trial_status(trial) == "pruned"
    run_dir = sweep_folder(tmp_path, "unit") / trial.user_attrs["run_dirs"][0]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "pruned"
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 2  # header + the one epoch it ran


def test_reporter_uses_one_step_per_epoch_per_seed():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) == 2

    trial = FakeTrial()
    reporter = PruneReporter(trial, "val_loss", "minimize", offset=3)
    reporter(0, {"val_loss": 0.5})
    with pytest.raises(Pruned):
        reporter(1, {"val_loss": 0.7})
    assert trial.reports == [(3, 0.5), (4, 0.7)] and reporter.best == 0.5


def test_refine_cli_starts_a_narrowed_study(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, trials=2, seed=0)
    assert main(["sweep", str(path)]) == 0
    assert main(["sweep", "--refine", str(sweep_folder(tmp_path)), "--top", "2", "--trials", "1"]) == 0
    refined = sweep_folder(tmp_path, "tiny-refined")
    meta = json.loads((refined / "sweep.json").read_text())
    lrs = [float(r["param.optimizer.lr"]) for r in read_trial_rows(sweep_folder(tmp_path))]
    lr = meta["space"]["optimizer.lr"]
    assert 0.01 <= lr["low"] <= lr["high"] <= 0.5 and (lr["low"], lr["high"]) != (0.01, 0.5)
    assert meta["refined_from"] == str(sweep_folder(tmp_path))
    assert len(read_rows(refined)) == 1 and lrs


def test_workers_split_cores_on_cpu_and_go_round_robin_over_gpus():
    from runner.sweep.workers import plan

    cpu = plan(2, per_gpu=1, gpus=0, cores=2)
    assert [(p.worker, p.threads, p.device) for p in cpu] == [(0, 1, None), (1, 1, None)]
    assert plan(None, per_gpu=1, gpus=0, cores=8)[0].threads == 8
    gpu = plan(None, per_gpu=2, gpus=2, cores=16)
    assert [p.device for p in gpu] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"] and gpu[0].threads == 4
    assert [p.device for p in plan(3, per_gpu=1, gpus=2, cores=16)] == ["cuda:0", "cuda:1", "cuda:0"]


@pytest.mark.parametrize("sampler", ["random", "grid", "tpe", "gp", "qmc", "cmaes"])
@pytest.mark.parametrize("pruner", ["none", "median", "successive_halving", "hyperband"])
def test_every_sampler_and_pruner_drives_a_conditional_space(sampler, pruner):
    from runner.sweep.study import make_pruner, make_sampler

    spec = spec_from_dict({"study": "s", "sampler": sampler, "pruner": pruner, "trials": 6, "space": {
        "optimizer": ["momentum", "adam"],
        "optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "momentum"}},
        "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}})
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec, seed=0),
                                pruner=make_pruner(spec))

    def objective(trial):
        a = suggest(trial, spec.space)
        for step in range(3):
            trial.report(a["optimizer.lr"] * step, step)
        return -abs(math.log10(a["optimizer.lr"]) + 1)

    study.optimize(objective, n_trials=6)
    assert len(study.trials) == 6 and all(t.state.name == "COMPLETE" for t in study.trials)


@pytest.mark.parametrize("race", ["(sqlite3.OperationalError) table studies already exists",
                                  "(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint"])
def test_workers_racing_to_create_the_tables_retry_instead_of_failing(tmp_path, monkeypatch, race):
    """Two processes opening one fresh database both create Optuna's tables; the loser's error
    (SQLite and PostgreSQL word it differently) means the tables exist now: it tries again."""
    import sqlalchemy.exc

    from runner.sweep import storage

    real_init, calls = optuna.storages.RDBStorage.__init__, []

    def lose_the_race_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception(race))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "__init__", lose_the_race_once)
    monkeypatch.setattr(storage.time, "sleep", lambda s: None)
    assert open_storage(default_storage(tmp_path)) is not None and len(calls) == 2


# ---------------------------------------------------------------- one spec, one run, one owner of each file

def test_the_spec_is_frozen_and_its_sequences_are_tuples(tmp_path):
    spec = tiny_spec(tmp_path, trials=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.trials = 3
    assert isinstance(spec.base, tuple) and isinstance(spec.space, tuple)


def test_the_spec_is_validated_once_per_sweep_start(tmp_path, monkeypatch):
    """Settings checked and probes composed once, for a sweep file and for --refine (which
    also reads the old sweep's spec)."""
    from runner.sweep import build, space, spec

    calls = {"settings": 0, "probes": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    settings = counted("settings", spec.check_settings)
    monkeypatch.setattr(spec, "check_settings", settings)
    monkeypatch.setattr(build, "check_settings", settings)
    monkeypatch.setattr(space, "probe_assignments", counted("probes", space.probe_assignments))
    path = write_sweep(tmp_path, trials=2, seed=0)
    assert main(["sweep", str(path)]) == 0
    assert calls == {"settings": 1, "probes": 1}
    assert main(["sweep", "--refine", str(sweep_folder(tmp_path)), "--top", "2", "--trials", "1"]) == 0
    assert calls == {"settings": 2, "probes": 2}


def test_refine_changes_are_validated_like_a_files(tmp_path, capsys):
    path = write_sweep(tmp_path, trials=1)
    assert main(["sweep", str(path)]) == 0
    capsys.readouterr()
    assert main(["sweep", "--refine", str(sweep_folder(tmp_path)), "--seeds", "0"]) == 2
    assert "seeds=0: must be an integer >= 1" in capsys.readouterr().err


def test_trials_csv_is_kept_current_by_the_sweep_not_by_its_view(tmp_path, monkeypatch):
    """The view is handed the rows after they are on disk; it is a stand-in that writes nothing."""
    import runner.cli.sweep as cli_sweep

    shown = []

    class View:
        def __init__(self, spec):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def show(self, rows):
            shown.append(([(r["number"], r["status"]) for r in rows],
                          [(int(r["number"]), r["status"]) for r in read_rows(sweep_folder(tmp_path))]))

    monkeypatch.setattr(cli_sweep, "SweepView", View)
    assert main(["sweep", str(write_sweep(tmp_path, trials=2))]) == 0
    assert len(shown) == 3  # at the start and after each trial
    assert all(handed == on_disk for handed, on_disk in shown)
    assert shown[-1][0] == [(0, "completed"), (1, "completed")]


def test_the_live_view_writes_nothing(tmp_path, monkeypatch):
    from runner.cli.sweep import SweepView
    from runner.runs import files
    from runner.sweep import outputs

    def refuse(*args, **kwargs):
        raise AssertionError("the view wrote a file")

    monkeypatch.setattr(outputs, "write_outputs", refuse)
    monkeypatch.setattr(files, "write_atomic", refuse)
    monkeypatch.chdir(tmp_path)
    row = {"number": 0, "state": "COMPLETE", "status": "completed", "value": 0.9, "value_seed0": 0.9,
           "duration_s": 1.0, "param.optimizer.lr": "0.1", "run_dirs": "", "error": ""}
    with SweepView(tiny_spec(tmp_path, trials=2)) as view:
        view.show([row])
    assert list(tmp_path.iterdir()) == []


def test_trials_csv_reads_back_what_was_written_for_refine_rerun_and_report(tmp_path):
    from runner import report
    from runner.sweep.outputs import (
        read_trials_table,
        trial_of_run_folder,
        write_outputs,
    )

    spec = spec_from_dict({"study": "s", "seeds": 2, "space": {
        "optimizer": ["momentum", "adam"],
        "optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "momentum"}},
        "model.depth": {"type": "int", "low": 1, "high": 4}}})
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3))
    for number in range(4):
        trial = study.ask()
        suggest(trial, spec.space)
        trial.set_user_attr("status", "completed")
        trial.set_user_attr("seed_values", [0.5 + number / 10, 0.6])
        trial.set_user_attr("run_dirs", [f"runs/t{number}-seed0", f"runs/t{number}-seed1"])
        study.tell(trial, 0.55 + number / 20)
    write_outputs(study, spec, tmp_path)

    rows = read_trial_rows(tmp_path)
    assert [assignment_of_row(spec.space, r) for r in rows] == [t.params for t in study.trials]
    assert [int(r["number"]) for r in best_rows(rows, spec.direction, 2)] == [3, 2]
    table = report.load_sweep(tmp_path).trials
    assert table.equals(read_trials_table(tmp_path)) and table["value"].tolist() == [t.value for t in study.trials]
    assert trial_of_run_folder(table) == {f"t{n}-seed{k}": float(n) for n in range(4) for k in range(2)}


def test_a_malformed_trials_csv_is_a_data_error_for_report(tmp_path):
    from runner import report

    (tmp_path / "trials.csv").write_bytes(b"number,value\n\xff\xfe\x00broken")
    with pytest.raises(DataError, match="trials.csv is malformed"):
        report.load_sweep(tmp_path)


def test_reading_a_study_for_a_report_never_creates_a_database_file(tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    missing = tmp_path / "nowhere.db"
    with pytest.raises(DataError, match="not found"):
        open_storage(f"sqlite:///{missing}", existing_in=folder)
    from runner import report

    sweep = report.Sweep(folder, "demo", {"storage": f"sqlite:///{missing}"}, report.load_sweep(folder).trials)
    importances, notes = report.param_importances(sweep)
    assert importances is None and "not found" in notes[0]
    assert not missing.exists() and list(folder.iterdir()) == []


def test_a_moved_sweep_folder_still_finds_its_sqlite_study_for_a_report(tmp_path):
    from test_report import make_sweep

    from runner import report

    folder = make_sweep(tmp_path / "before", storage_kind="sqlite")
    moved = folder.rename(tmp_path / "moved")  # sweep.json still names the old absolute path
    importances, notes = report.param_importances(report.load_sweep(moved))
    assert notes == [] and set(importances["param"]) == {"optimizer.lr", "model.width"}
    assert not (folder / "study.db").exists()


def test_one_signal_contract_records_forwards_and_restores():
    from runner.sweep.signals import check_stop, stop_handlers, stop_signal

    before = signal.getsignal(signal.SIGTERM)
    forwarded = []
    with stop_handlers(forward=forwarded.append):
        check_stop()  # nothing recorded yet
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        assert forwarded == [signal.SIGTERM, signal.SIGINT] and stop_signal() == signal.SIGTERM
        with pytest.raises(Interrupted) as stopped:
            check_stop()
        assert stopped.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("flags, expected", [(["--extend", "0"], "--extend 0: must be >= 1"),
                                             (["--heartbeat", "-1"], "--heartbeat and --grace: must be >= 1")])
def test_bad_run_options_exit_2_before_anything_is_created(tmp_path, capsys, flags, expected):
    assert main(["sweep", str(write_sweep(tmp_path)), *flags]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()
