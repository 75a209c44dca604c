"""trainer.tensorboard: event files tbparse reads, one value per tag and epoch, also after resumes."""
import csv
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tensorboard")
tbparse = pytest.importorskip("tbparse")

from testkit import sigterm_at_step

from optlab.config.compose import load_run_config
from optlab.errors import Interrupted
from optlab.training.build import build
from optlab.training.diagnostics import blocks
from optlab.training.api import train
from optlab.training.tensorboard import drop_events_from

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # tbparse's own use of pandas

TB = ("trainer.tensorboard=true",)
TIMING = {"epoch_time_s", "samples_per_s"}


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def scalars(run_dir):
    """{tag: [(step, value), ...]} over every event file in RUN/tb/, sorted by step."""
    frame = tbparse.SummaryReader(str(run_dir / "tb")).scalars
    if frame.empty:
        return {}
    return {tag: sorted(zip(group["step"], group["value"])) for tag, group in frame.groupby("tag")}


def assert_one_value_per_epoch(run_dir):
    table, logged = rows(run_dir), scalars(run_dir)
    for column in ("val_acc", "val_loss", "train_loss", "train_acc", "lr", "grad_norm", "step", "batch_size"):
        assert [s for s, _ in logged[column]] == list(range(len(table)))
        assert [v for _, v in logged[column]] == pytest.approx([float(r[column]) for r in table], rel=1e-6)


def test_every_epoch_has_every_metrics_column_and_the_metrics_do_not_change(compose_cfg):
    run = train(compose_cfg(*TB, "trainer.epochs=3")).run_dir
    assert_one_value_per_epoch(run)
    assert "epoch" not in scalars(run)
    plain = train(compose_cfg("trainer.epochs=3")).run_dir
    strip = lambda t: [{k: v for k, v in r.items() if k not in TIMING} for r in t]
    assert strip(rows(run)) == strip(rows(plain))
    assert not (plain / "tb").exists()


def test_a_resume_after_a_signal_appends_each_epoch_once(compose_cfg, monkeypatch):

    overrides = (*TB, "trainer.epochs=3", "trainer.log_every=1")
    steps_per_epoch = int(rows(train(compose_cfg("trainer.epochs=1", "trainer.log_every=1")).run_dir)[0]["step"])
    restore = sigterm_at_step(monkeypatch, steps_per_epoch + 2)
    with pytest.raises(Interrupted) as info:
        train(compose_cfg(*overrides))
    restore()
    run = info.value.result.run_dir
    assert [s for s, _ in scalars(run)["val_acc"]] == [0]
    train(compose_cfg(*overrides), resume_dir=run)
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2
    assert_one_value_per_epoch(run)


def test_a_resume_from_an_older_checkpoint_keeps_one_value_per_epoch(compose_cfg):
    import shutil

    run = train(compose_cfg(*TB, "trainer.epochs=3")).run_dir
    # as if killed hard after epoch 2's events were flushed, with the checkpoint of epoch 0
    older = train(compose_cfg(*TB, "trainer.epochs=1", "trainer.checkpoint_every_s=0")).run_dir
    shutil.copy(older / "checkpoint.pt", run / "checkpoint.pt")
    before = scalars(run)["val_acc"]
    train(compose_cfg(*TB, "trainer.epochs=3"), resume_dir=run)
    assert_one_value_per_epoch(run)
    assert scalars(run)["val_acc"] == before  # the same run, recomputed


def test_events_of_epochs_a_resume_recomputes_are_dropped(compose_cfg):
    # a run killed hard after epoch 2's events were flushed but with its checkpoint at epoch 0
    run = train(compose_cfg(*TB, "trainer.epochs=3")).run_dir
    drop_events_from(run / "tb", first_epoch=1)
    assert [s for s, _ in scalars(run)["val_acc"]] == [0]
    drop_events_from(run / "tb", first_epoch=0)
    assert "val_acc" not in scalars(run)


def model_blocks(run):
    return blocks(build(load_run_config(run)).model)


def test_histograms_of_each_layers_weights_gradients_and_outputs_when_diagnostics_are_on(compose_cfg):
    run = train(compose_cfg(*TB, "trainer.diagnostics=true", "diagnostics.every=2", "trainer.epochs=4",
                            "model.depth=2", "model.width=16")).run_dir
    frame = tbparse.SummaryReader(str(run / "tb")).histograms
    tags = sorted(set(frame["tag"]))
    weights = [t for t in tags if t.startswith("weights/")]
    assert len(weights) == 3 and all(t.endswith(".weight") for t in weights)  # two hidden layers and the head
    assert [t.replace("gradients/", "weights/") for t in tags if t.startswith("gradients/")] == weights
    blocks = [name for name, _ in model_blocks(run)]
    assert [t for t in tags if t.startswith("activations/")] == sorted(f"activations/{b}" for b in blocks)
    assert len(blocks) == 2  # the hidden blocks diagnostics probes
    n_train = len(build(load_run_config(run)).data.x_train)
    last_batch = n_train % 64 or 64  # the probed step is the epoch's last
    activation = frame[frame["tag"] == f"activations/{blocks[0]}"].iloc[0]
    assert activation["counts"].sum() == last_batch * 16  # every unit's output on that batch
    assert sorted(set(frame["step"])) == [1, 3]  # the epochs diagnostics records
    assert not tbparse.SummaryReader(str(train(compose_cfg(*TB)).run_dir / "tb")).histograms.size


@pytest.mark.slow
def test_without_the_package_the_key_exits_2_with_the_install_line(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys

        class BlockTensorBoard:
            def find_spec(self, name, path=None, target=None):
                if name == "tensorboard" or name.startswith("tensorboard."):
                    raise ImportError(f"No module named {name!r}")

        sys.meta_path.insert(0, BlockTensorBoard())
    """))
    env = {"PYTHONPATH": str(blocker), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    code = "import sys; from optlab.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "train", "trainer.tensorboard=true", "trainer.epochs=1",
                           "trainer.progress=false", f"trainer.out_dir={tmp_path / 'out'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "optlab: error: trainer.tensorboard=true needs the tensorboard package: pip install 'optlab[tensorboard]'"]
    assert not (tmp_path / "out").exists()


def test_tensorboard_runs_train_alone_in_a_population_and_do_not_change_what_a_run_is(compose_cfg):
    from optlab.config.compose import is_bookkeeping
    from optlab.training.grouping import why_solo

    assert why_solo(compose_cfg(*TB)) == "trainer.tensorboard=true writes one run's event files"
    assert is_bookkeeping("trainer.tensorboard")  # a rerun with it is a duplicate, not a new sample
