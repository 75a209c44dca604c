"""A run's state snapshot and restore: resumes, mid-epoch too, continue to the same metrics."""
import csv

import pandas as pd
import pytest
from testkit import sigterm_at_step

from optlab.runs.folder import load_checkpoint
from optlab.training.api import train


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_resume_continues_to_the_same_result(compose_cfg, tmp_path):
    full = rows(train(compose_cfg("trainer.epochs=4", "model.dropout=0.2")).run_dir)
    stop_after = {"epoch": 1}

    class Stop(Exception):
        pass

    def stop(epoch, row):
        if epoch == stop_after["epoch"]:
            raise Stop

    cfg = compose_cfg("trainer.epochs=4", "model.dropout=0.2")
    with pytest.raises(Stop):
        train(cfg, on_epoch=stop)
    run = sorted((tmp_path / "outputs" / "runs").iterdir())[-1]
    resumed = rows(train(cfg, resume_dir=run).run_dir)
    timing = {"epoch_time_s", "samples_per_s"}
    strip = lambda t: [{k: v for k, v in r.items() if k not in timing} for r in t]
    assert strip(resumed) == strip(full)


@pytest.mark.parametrize("on_device", ["true", "false"])
def test_a_signal_inside_an_epoch_resumes_at_that_step_with_identical_metrics(compose_cfg, monkeypatch, on_device):
    from optlab.errors import Interrupted

    overrides = ("trainer.epochs=3", "model.dropout=0.2", "trainer.log_every=1", f"trainer.data_on_device={on_device}")
    full = rows(train(compose_cfg(*overrides)).run_dir)
    steps_per_epoch, stop_at_call = int(full[0]["step"]), int(full[0]["step"]) + 7
    restore = sigterm_at_step(monkeypatch, stop_at_call)
    with pytest.raises(Interrupted) as info:
        train(compose_cfg(*overrides))
    run = info.value.result.run_dir
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["epoch"] == 0 and ckpt["step"] == stop_at_call
    assert ckpt["mid_epoch"]["epoch"] == 1 and ckpt["mid_epoch"]["batches_done"] == stop_at_call - steps_per_epoch
    restore()
    resumed = rows(train(compose_cfg(*overrides), resume_dir=run).run_dir)
    timing = {"epoch_time_s", "samples_per_s"}
    strip = lambda t: [{k: v for k, v in r.items() if k not in timing} for r in t]
    assert strip(resumed) == strip(full)


def test_resume_with_the_other_data_placement_continues_the_same_run(compose_cfg):
    columns = ["train_loss", "train_acc", "val_loss", "val_acc", "grad_norm"]
    first = train(compose_cfg("trainer.epochs=1", "trainer.checkpoint_every_s=0", "trainer.data_on_device=true")).run_dir
    train(compose_cfg("trainer.epochs=2", "trainer.data_on_device=false"), resume_dir=first)
    alone = train(compose_cfg("trainer.epochs=2", "trainer.data_on_device=true")).run_dir
    tables = [pd.read_csv(run / "metrics.csv")[columns] for run in (first, alone)]
    pd.testing.assert_frame_equal(*tables)
