"""A finished run's folder: config.yaml, metrics.csv, summary.json and checkpoint.pt."""
import csv

import pytest

from optlab.runs.files import read_json
from optlab.runs.folder import METRIC_COLUMNS, load_checkpoint
from optlab.training.api import train


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_run_folder_holds_config_metrics_summary_checkpoint(compose_cfg):
    result = train(compose_cfg("trainer.epochs=3"))
    run = result.run_dir
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.csv", "summary.json", "checkpoint.pt"}
    table = rows(run)
    assert [int(r["epoch"]) for r in table] == [0, 1, 2]
    assert list(table[0].keys()) == METRIC_COLUMNS
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["epochs_done"] == 3
    assert summary["final_val_acc"] == pytest.approx(float(table[-1]["val_acc"]))
    assert summary["best_val_acc"] == pytest.approx(max(float(r["val_acc"]) for r in table))
    for key in ("final_val_loss", "wall_time_s", "seed", "device", "torch", "optlab"):
        assert key in summary
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and "model" in ckpt and "optimizer" in ckpt and "rng" in ckpt
