"""Opening storages (unreachable, racing, read-only for reports, moved) and failing stale trials by heartbeat."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from testkit import make_sweep, read_rows, sweep_folder, tiny_spec, write_sweep

from optlab.cli.app import main
from optlab.errors import ConfigError, DataError
from optlab.sweep.storage import (
    default_storage,
    network_filesystem,
    open_storage,
    refuse_sqlite_on_network,
)
from optlab.sweep.study import open_study, trial_status
from optlab.sweep.workers import Worker


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

    from optlab.sweep import storage

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
    from optlab import report

    sweep = report.Sweep(folder, "demo", {"storage": f"sqlite:///{missing}"}, report.load_sweep(folder).trials)
    importances, notes = report.param_importances(sweep)
    assert importances is None and "not found" in notes[0]
    assert not missing.exists() and list(folder.iterdir()) == []


def test_a_moved_sweep_folder_still_finds_its_sqlite_study_for_a_report(tmp_path):
    from optlab import report

    folder = make_sweep(tmp_path / "before", storage_kind="sqlite")
    moved = folder.rename(tmp_path / "moved")  # sweep.json still names the old absolute path
    importances, notes = report.param_importances(report.load_sweep(moved))
    assert notes == [] and set(importances["param"]) == {"optimizer.lr", "model.width"}
    assert not (folder / "study.db").exists()


# ---------------------------------------------------------------- journal files and network filesystems

def test_a_journal_trial_is_stale_once_its_heartbeat_stays_unchanged_past_the_grace_period(tmp_path):
    now = [0.0]
    storage = open_storage(f"journal:{tmp_path / 'study.journal'}", heartbeat=1, grace=10, clock=lambda: now[0])
    study = open_study(tiny_spec(tmp_path, trials=2), storage)
    alive, dead = study.ask(), study.ask()
    for t in (alive, dead):
        storage.record_heartbeat(t._trial_id)
    assert storage._get_stale_trial_ids(study._study_id) == []  # first seen at 0
    now[0] = 9.0
    storage.record_heartbeat(alive._trial_id)  # a new beat restarts its grace period
    assert storage._get_stale_trial_ids(study._study_id) == []
    now[0] = 10.5
    assert storage._get_stale_trial_ids(study._study_id) == [dead._trial_id]
    now[0] = 18.5  # the new beat was seen at 9: stale after 19
    assert storage._get_stale_trial_ids(study._study_id) == [dead._trial_id]
    now[0] = 19.5
    assert sorted(storage._get_stale_trial_ids(study._study_id)) == sorted([alive._trial_id, dead._trial_id])


def test_a_dead_workers_journal_trial_is_failed_and_its_configuration_queued_again(tmp_path):
    now = [0.0]
    url = f"journal:{tmp_path / 'study.journal'}"
    storage = open_storage(url, heartbeat=1, grace=5, clock=lambda: now[0])
    study = open_study(tiny_spec(tmp_path, trials=1), storage)
    dead = study.ask()
    lr = dead.suggest_float("optimizer.lr", 0.05, 0.2)
    optuna.storages.fail_stale_trials(study)
    now[0] = 6.0
    optuna.storages.fail_stale_trials(study)
    reread = open_study(tiny_spec(tmp_path, trials=1), open_storage(url, existing_in=tmp_path))
    states = [t.state.name for t in reread.get_trials()]
    assert states == ["FAIL", "WAITING"]
    assert reread.get_trials()[1].system_attrs["fixed_params"] == {"optimizer.lr": lr}


def test_journal_files_are_locked_with_the_lock_that_works_on_nfs(tmp_path):
    from optuna.storages.journal import JournalFileOpenLock

    storage = open_storage(f"journal:{tmp_path / 'study.journal'}")
    assert isinstance(storage._backend._lock, JournalFileOpenLock)


def test_a_journal_file_in_a_missing_folder_is_refused_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot open the storage .folder .* does not exist"):
        open_storage(f"journal:{tmp_path / 'nowhere' / 'study.journal'}")


def test_a_local_sweep_runs_on_a_journal_file_and_reports_read_it(tmp_path, capsys):
    journal = tmp_path / "shared" / "study.journal"
    journal.parent.mkdir()
    assert main(["sweep", str(write_sweep(tmp_path)), "--storage", f"journal:{journal}"]) == 0
    assert [r["state"] for r in read_rows(sweep_folder(tmp_path))] == ["COMPLETE", "COMPLETE"]
    assert json.loads((sweep_folder(tmp_path) / "sweep.json").read_text())["storage"] == f"journal:{journal}"


MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export/home /home nfs4 rw,relatime 0 0
/dev/sdb1 /home/scratch ext4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


@pytest.mark.parametrize("path, kind", [("/home/ana/outputs", "nfs4"), ("/home", "nfs4"),
                                        ("/home/scratch/study", None), ("/homework", None), ("/tmp/x", None)])
def test_the_deepest_mount_holding_a_path_says_whether_it_is_a_network_filesystem(path, kind):
    assert network_filesystem(Path(path), MOUNTS) == kind


def test_sqlite_on_a_network_filesystem_is_refused_and_the_journal_suggested():
    with pytest.raises(ConfigError, match=r"^--storage sqlite:////home/ana/study.db: SQLite on a network filesystem "
                                          r"\(nfs4\).*journal:/home/ana/study.journal"):
        refuse_sqlite_on_network("sqlite:////home/ana/study.db", MOUNTS)
    refuse_sqlite_on_network("sqlite:////home/scratch/study.db", MOUNTS)  # a local disk: allowed


def test_slurm_sweeps_default_to_a_journal_file_in_the_sweep_folder(tmp_path):
    assert default_storage(tmp_path, "slurm") == f"journal:{tmp_path.resolve() / 'study.journal'}"
    assert default_storage(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'study.db'}"
