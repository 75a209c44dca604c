"""The two training loaders (device-resident and streaming), the choice between them, and
the set-up options channels_last and compile."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from runner.data.loaders import (
    DeviceBatches,
    StreamingBatches,
    data_fits,
    keep_data_on_device,
)
from runner.data.split import load_dataset
from runner.errors import ConfigError
from runner.training.build import prepare_model
from runner.training.checkpoint import RunFolderWriter
from runner.training.loop import train

SHAPES = ["data=shapes", "data.n_samples=200", "model=cnn", "model.channels=4", "model.depth=2"]


def batches_of(loader, batch_size: int) -> list[torch.Tensor]:
    return [xb.flatten() for xb, _ in loader.epoch(batch_size)]


def test_streaming_batches_match_device_batches_for_the_same_generator_seed():
    x, y = torch.arange(50.0).unsqueeze(1), torch.arange(50)
    on_device = DeviceBatches(x, y, torch.Generator().manual_seed(3))
    streamed = StreamingBatches(x, y, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert streamed.num_batches(16) == on_device.num_batches(16) == 4 and len(streamed) == 50
    for _ in range(2):  # two epochs: the generator advances the same way
        a, b = batches_of(on_device, 16), batches_of(streamed, 16)
        assert all(torch.equal(p, q) for p, q in zip(a, b)) and len(a) == len(b) == 4
    seen = torch.cat(batches_of(streamed, 16))
    assert sorted(seen.tolist()) == list(range(50))


def test_streaming_batches_pair_rows_with_labels_and_keep_channels_last():
    x = torch.arange(12.0).view(12, 1, 1, 1).expand(12, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    loader = StreamingBatches(x, torch.arange(12), torch.Generator().manual_seed(0), torch.device("cpu"))
    for xb, yb in loader.epoch(5):
        assert xb.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(xb[:, 0, 0, 0].long(), yb)


def test_auto_keeps_data_on_device_when_it_fits_a_fraction_of_free_memory():
    assert data_fits(40, free_bytes=100) and not data_fits(60, free_bytes=100)
    assert data_fits(90, free_bytes=100, fraction=0.9)
    data = load_dataset({"name": "spirals", "n_samples": 30, "classes": 3, "noise": 0.1}, 0.2, 0)
    cpu = torch.device("cpu")
    assert keep_data_on_device("auto", data, cpu)  # on a CPU the data is in that memory already
    assert keep_data_on_device(True, data, cpu) and keep_data_on_device("true", data, cpu)
    assert not keep_data_on_device(False, data, cpu) and not keep_data_on_device("false", data, cpu)


def test_streamed_run_gives_the_same_metrics_as_the_device_resident_run(compose_cfg, tmp_path):
    runs = [train(compose_cfg(f"trainer.data_on_device={choice}"), run_root=tmp_path / choice)
            for choice in ("true", "false")]
    tables = [pd.read_csv(r.run_dir / "metrics.csv") for r in runs]
    columns = ["train_loss", "train_acc", "val_loss", "val_acc", "grad_norm"]
    pd.testing.assert_frame_equal(tables[0][columns], tables[1][columns])


def test_channels_last_run_matches_the_default_layout(compose_cfg, tmp_path):
    runs = [train(compose_cfg(*SHAPES, f"trainer.channels_last={flag}", "trainer.epochs=1"), run_root=tmp_path / flag)
            for flag in ("false", "true")]
    tables = [pd.read_csv(r.run_dir / "metrics.csv") for r in runs]
    for column in ("train_loss", "val_loss"):
        assert tables[0][column].iloc[0] == pytest.approx(tables[1][column].iloc[0], rel=1e-4)


def test_channels_last_needs_images(compose_cfg, tmp_path):
    with pytest.raises(ConfigError, match="channels_last"):
        train(compose_cfg("data=spirals", "trainer.channels_last=true"), run_root=tmp_path)


def test_prepare_model_converts_layout_and_compiles_in_place():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    keys = list(model.state_dict())
    prepared = prepare_model(model, {"channels_last": True, "compile": True})
    assert prepared is model and list(model.state_dict()) == keys  # checkpoints stay loadable
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model._compiled_call_impl is not None  # compiled lazily, on the first forward
    plain = prepare_model(torch.nn.Linear(2, 2), {"channels_last": False, "compile": False})
    assert plain._compiled_call_impl is None


def test_checkpointer_snapshots_only_when_a_write_is_due_and_never_twice(monkeypatch, tmp_path):
    import runner.training.checkpoint as rt
    from runner.runs.files import CsvAppender

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
    from runner.runs.folder import load_checkpoint

    run = train(compose_cfg("trainer.checkpoint_every_s=0"), run_root=tmp_path).run_dir
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and all(v.device.type == "cpu" for v in ckpt["model"].values())
