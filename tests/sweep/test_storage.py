"""Opening storages (unreachable, racing, read-only for reports, moved) and failing stale trials by heartbeat."""
from __future__ import annotations

import optuna
import pytest
from testkit import make_sweep, sweep_folder, tiny_spec, write_sweep

from runner.cli.app import main
from runner.errors import DataError
from runner.sweep.storage import default_storage, open_storage
from runner.sweep.study import open_study, trial_status
from runner.sweep.workers import Worker


def test_unreachable_storage_exits_2(tmp_path, capsys):
    code = main(["sweep", str(write_sweep(tmp_path)), "--storage", "postgresql://nobody:secret@127.0.0.1:1/optlab"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "cannot open the storage" in err and "secret" not in err


def test_trial_of_a_dead_worker_is_failed_by_heartbeat_and_its_configuration_retried(tmp_path, storage_url):
    import datetime

    import sqlalchemy
    from optuna.storages._rdb.models import TrialHeartbeatModel

    spec = tiny_spec(tmp_path, trials=1)
    folder = sweep_folder(tmp_path, "unit")
    folder.mkdir(parents=True)
    url = storage_url
    storage = open_storage(url, heartbeat=1, grace=1)
    study = open_study(spec, storage)
    dead = study.ask()
    lr = dead.suggest_float("optimizer.lr", 0.05, 0.2)
    dead.set_user_attr("status", "running")
    storage.record_heartbeat(dead._trial_id)
    beats = TrialHeartbeatModel.__table__
    with sqlalchemy.create_engine(url).begin() as db:  # the clock moves on: its last beat is an hour old
        (beat,) = db.execute(sqlalchemy.select(beats.c.heartbeat)).one()
        db.execute(sqlalchemy.update(beats).values(heartbeat=beat - datetime.timedelta(hours=1)))

    Worker(spec, folder, url, heartbeat=1, grace=1).run()
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trial_status(trials[0]) == "interrupted"
    assert trials[1].params["optimizer.lr"] == lr and trials[1].user_attrs["retry_of"] == 0


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
    from runner import report

    folder = make_sweep(tmp_path / "before", storage_kind="sqlite")
    moved = folder.rename(tmp_path / "moved")  # sweep.json still names the old absolute path
    importances, notes = report.param_importances(report.load_sweep(moved))
    assert notes == [] and set(importances["param"]) == {"optimizer.lr", "model.width"}
    assert not (folder / "study.db").exists()
