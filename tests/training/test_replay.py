"""Replay (runner/training/replay.py): a run trained under a piecewise-constant schedule of
hyper-parameters, checked against the schedule group's own step decay."""
from __future__ import annotations

import csv

import pytest
import yaml

from optlab.errors import ConfigError
from optlab.training.api import train
from optlab.training.replay import read_schedule, replay_overrides, values_at

TIMING = ("epoch_time_s", "samples_per_s")


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def write_schedule(path, schedule, **fields):
    path.write_text(yaml.safe_dump({"base": ["model.width=16"], "epochs": 3, **fields, "schedule": schedule}))
    return path


def test_a_replayed_lr_that_halves_each_epoch_trains_exactly_as_the_step_schedule(compose_cfg, tmp_path):
    path = write_schedule(tmp_path / "s.yaml", {"optimizer.lr": [[0, 0.2], [1, 0.1], [2, 0.05]]})
    replayed = train(compose_cfg("trainer.epochs=3", "optimizer=momentum", "optimizer.lr=0.2", f"trainer.replay={path}"))
    stepped = train(compose_cfg("trainer.epochs=3", "optimizer=momentum", "optimizer.lr=0.2", "schedule=step",
                                "schedule.step_size=1", "schedule.gamma=0.5"))
    a, b = rows(replayed.run_dir), rows(stepped.run_dir)
    assert [float(r["optimizer.lr"]) for r in a] == [0.2, 0.1, 0.05]  # metrics.csv records the values in force
    assert [{k: v for k, v in r.items() if k not in (*TIMING, "optimizer.lr")} for r in a] == \
           [{k: v for k, v in r.items() if k not in TIMING} for r in b]


def test_a_schedules_values_hold_from_their_epoch_on(tmp_path):
    _, schedule = read_schedule(write_schedule(tmp_path / "s.yaml", {"optimizer.lr": [[0, 0.1], [4, 0.05]],
                                                                     "optimizer.weight_decay": [[0, 0.001]]}))
    assert values_at(schedule, 3) == {"optimizer.lr": 0.1, "optimizer.weight_decay": 0.001}
    assert values_at(schedule, 4)["optimizer.lr"] == values_at(schedule, 9)["optimizer.lr"] == 0.05


def test_optlab_train_replay_composes_the_files_base_epochs_and_first_values(tmp_path):
    path = write_schedule(tmp_path / "s.yaml", {"optimizer.lr": [[0, 0.1], [4, 0.05]]})
    assert replay_overrides(path) == ["model.width=16", "trainer.epochs=3", "optimizer.lr=0.1",
                                      f"trainer.replay={path.resolve()}"]


@pytest.mark.parametrize("schedule, words", [
    ({"model.width": [[0, 16]]}, "model.width shapes the run"),
    ({"optimizer.lr": [[1, 0.1]]}, "increasing epochs from 0"),
    ({"optimizer.lr": [[0, 0.1], [0, 0.2]]}, "increasing epochs from 0"),
    ({"optimizer.lr": [[0, "fast"]]}, "not a finite number"),
    ({}, "no `schedule:` mapping"),
])
def test_a_bad_schedule_file_is_one_line_naming_what_is_wrong(tmp_path, schedule, words):
    with pytest.raises(ConfigError, match=words):
        read_schedule(write_schedule(tmp_path / "s.yaml", schedule))


def test_a_missing_schedule_file_says_where_one_comes_from(tmp_path):
    with pytest.raises(ConfigError, match="no such file .*best_schedule.yaml"):
        read_schedule(tmp_path / "nothing.yaml")
