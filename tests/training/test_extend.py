"""optlab train --resume RUN trainer.epochs=M: a finished run continued to M epochs equals an
M-epoch run where the schedule does not depend on the run's length; elsewhere exit 2."""
from __future__ import annotations

import csv

import pytest

from optlab.runs.files import read_json

TIMING = ("epoch_time_s", "samples_per_s")


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def train(optlab, *overrides: str):
    result = optlab("train", "trainer.progress=false", *overrides)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("schedule", [["schedule=step", "schedule.step_size=1", "schedule.gamma=0.5"],
                                      ["schedule=constant", "optimizer=momentum"]])
def test_two_epochs_extended_to_four_equal_a_four_epoch_run(optlab, tmp_path, schedule):
    short = train(optlab, "trainer.epochs=2", *schedule)
    result = optlab("train", "--resume", short, "trainer.epochs=4")
    assert result.returncode == 0, result.stderr
    extended = result.stdout.strip().splitlines()[-1]
    assert extended == short
    straight = train(optlab, "trainer.epochs=4", *schedule)
    assert rows(tmp_path / extended) == rows(tmp_path / straight) and len(rows(tmp_path / straight)) == 4
    summary = read_json(tmp_path / extended / "summary.json")
    assert (summary["status"], summary["epochs"], summary["epochs_done"], summary["extended_from"]) == \
           ("completed", 4, 4, [2])
    assert summary["best_val_acc"] == read_json(tmp_path / straight / "summary.json")["best_val_acc"]
    assert "epochs: 4" in (tmp_path / extended / "config.yaml").read_text()
    again = optlab("train", "--resume", extended)  # a plain resume of the extended run: already complete
    assert again.returncode == 0 and "already completed" in again.stderr


def test_an_early_stopped_run_continues_with_the_count_restarted(optlab, tmp_path):
    stalling = ["schedule=step", "schedule.step_size=2", "schedule.gamma=1e-9", "trainer.epochs=10",
                "trainer.early_stop.patience=2", "trainer.early_stop.min_delta=1e-4"]
    run = train(optlab, *stalling)
    assert read_json(tmp_path / run / "summary.json")["epochs_done"] == 4
    result = optlab("train", "--resume", run, "trainer.epochs=7")  # fewer than configured, more than done
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / run / "summary.json")
    # epochs 4 and 5 do not improve either: patience 2 runs out again after epoch 5
    assert (summary["epochs_done"], summary["reason"], summary["extended_from"]) == (6, "early_stopped", [4])


@pytest.mark.parametrize("args,fragment", [
    (["trainer.epochs=4"], "schedule=cosine depends on the run's length"),
    (["optimizer.lr=0.5"], "optimizer.lr=0.5: --resume continues the run with its saved config.yaml and cannot "
                           "change what it learns; give only trainer.epochs=M (to extend it) or trainer.progress"),
    (["trainer.epochs=4", "trainer.seed=2"], "trainer.seed=2: --resume continues the run"),
    (["trainer.epochs=1"], "already trained 2 of its 2 epochs"),
])
def test_what_cannot_be_extended_exits_2_with_one_line(optlab, tmp_path, args, fragment):
    run = train(optlab, "trainer.epochs=2", "schedule=cosine")
    before = (tmp_path / run / "config.yaml").read_text()
    result = optlab("train", "--resume", run, *args)
    assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / run / "config.yaml").read_text() == before
