"""The two training loaders (device-resident and streaming): the same batches, and the choice between them."""
from __future__ import annotations

import pandas as pd
import torch

from optlab.data.loaders import (
    DeviceBatches,
    StreamingBatches,
    data_fits,
    keep_data_on_device,
)
from optlab.data.split import load_dataset
from optlab.training.api import train


def test_device_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10.0).unsqueeze(1)
    batches = DeviceBatches(x, torch.arange(10), torch.Generator().manual_seed(0))
    seen = torch.cat([xb for xb, _ in batches.epoch(3)]).flatten()
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(xb) for xb, _ in batches.epoch(3)] == [3, 3, 3, 1]


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
