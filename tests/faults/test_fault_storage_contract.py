"""optlab's storages keep Optuna's storage contract: each pickles and works after the round
trip (as every Optuna storage does: users hand storages to process pools and joblib), and
the journal's heartbeat refuses what Optuna's RDB heartbeat refuses."""
from __future__ import annotations

import pickle

import optuna
import pytest

from optlab.sweep.storage import open_storage, requeue


@pytest.fixture(params=["rdb", "journal"])
def url(request, storage_url, tmp_path):
    """Every storage a sweep's workers open: the RDB matrix (SQLite, PostgreSQL) and a journal."""
    if request.param == "journal":
        if not storage_url.startswith("sqlite"):
            pytest.skip("the journal is a file: once is enough")
        return f"journal:{tmp_path / 'study.journal'}"
    return storage_url


def test_each_storage_pickles_and_works_after_the_round_trip(url):
    storage = open_storage(url, heartbeat=5, grace=20, on_stale=requeue)
    study = optuna.create_study(study_name="contract", storage=storage)
    study.enqueue_trial({"x": 1.0})
    copy = pickle.loads(pickle.dumps(storage))
    assert type(copy) is type(storage)
    assert (copy.get_heartbeat_interval() if hasattr(copy, "get_heartbeat_interval") else None) == 5
    again = optuna.load_study(study_name="contract", storage=copy)
    trial = again.ask()
    again.tell(trial, trial.suggest_float("x", 0, 2))
    assert [t.params for t in study.get_trials()] == [{"x": 1.0}]


@pytest.mark.parametrize("heartbeat, grace", [(-1, 20), (0, 20), (5, -1), (5, 0)])
def test_the_journal_heartbeat_refuses_what_the_rdb_heartbeat_refuses(tmp_path, heartbeat, grace):
    with pytest.raises(ValueError, match="should be a positive integer"):
        optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'rdb.db'}", heartbeat_interval=heartbeat,
                                   grace_period=grace)
    with pytest.raises(ValueError, match="should be a positive integer"):
        open_storage(f"journal:{tmp_path / 'study.journal'}", heartbeat=heartbeat, grace=grace)


@pytest.mark.parametrize("flag", ["--heartbeat", "--grace"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_heartbeat_or_grace_below_one_second_is_refused_not_replaced(optlab, tmp_path, flag, value):
    from testkit import write_sweep

    result = optlab("sweep", str(write_sweep(tmp_path)), flag, value)
    assert result.returncode == 2, result.stderr
    assert f"optlab: error: {flag} {value}: must be >= 1 second" in result.stderr
    assert not (tmp_path / "outputs" / "sweeps").exists()


@pytest.mark.parametrize("command", ["sweep", "compare"])
def test_a_grace_not_above_the_heartbeat_is_refused(optlab, tmp_path, command):
    """A live trial beats every --heartbeat seconds: a grace that short would count it dead."""
    from testkit import write_sweep

    target = str(write_sweep(tmp_path)) if command == "sweep" else "lecture_optimizers"
    result = optlab(command, target, "--grace", "5")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("optlab: error: --grace 5: must be more than --heartbeat (5 s), or a live trial "
                                     "counts as dead between two heartbeats")
    assert not (tmp_path / "outputs").exists()
