"""When checkpoints are written: only when due, never twice, as snapshots, failures raised."""
from __future__ import annotations

import pytest

from optlab.training.checkpoint import RunFolderWriter
from optlab.training.api import train


def test_checkpointer_snapshots_only_when_a_write_is_due_and_never_twice(monkeypatch, tmp_path):
    import optlab.training.checkpoint as rt
    from optlab.runs.files import CsvAppender

    written, taken = [], []
    monkeypatch.setattr(rt, "save_checkpoint", lambda path, state: written.append(state["epoch"]))
    now = [0.0]
    table = CsvAppender(tmp_path / "metrics.csv", ["epoch"], durable=False)
    checkpoint = rt.Checkpointer(tmp_path / "checkpoint.pt", every_s=10, table=table, clock=lambda: now[0])

    def snapshot_of(epoch):
        def take():
            taken.append(epoch)
            return {"epoch": epoch}
        return take

    with rt.RunFolderWriter() as writer:
        for epoch, t in enumerate([3.0, 6.0, 11.0, 14.0]):
            now[0] = t
            if checkpoint.due():
                checkpoint.write(writer, (epoch, epoch), snapshot_of(epoch))
        checkpoint.write(writer, (3, 3), snapshot_of(3))  # the run stops after epoch 3
        checkpoint.write(writer, (3, 3), snapshot_of(3))  # the same position: no second write
    assert written == [2, 3] and taken == [2, 3]


def test_run_folder_writer_reraises_a_failed_write():
    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with RunFolderWriter() as writer:
            writer.submit(fail)


def test_checkpoint_snapshot_does_not_follow_later_training(compose_cfg, tmp_path):
    from optlab.runs.folder import load_checkpoint

    run = train(compose_cfg("trainer.checkpoint_every_s=0"), run_root=tmp_path).run_dir
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and all(v.device.type == "cpu" for v in ckpt["model"].values())
