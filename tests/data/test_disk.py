"""The on-disk loaders read files written here in exactly their standard formats, and turn
missing or corrupt files into one-line DataErrors (exit code 3 through the CLI)."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from optlab.data._base import DATASETS
from optlab.data.split import load_dataset
from optlab.errors import ConfigError, DataError

N = 20  # images per file; labels i % 4 so a 0.2 validation split keeps one per class


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: two zero bytes, type 0x08 (unsigned byte), the number of dimensions, then each
    dimension as a big-endian uint32, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    return path


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Image i is filled with the value 10 * i, so each read-back row names its source."""
    images = np.repeat((10 * np.arange(N, dtype=np.uint8))[:, None, None], 28 * 28).reshape(N, 28, 28)
    images[:, 3, 7] = 255  # one bright pixel at a known place
    return images, (np.arange(N) % 4).astype(np.uint8)


def write_mnist(folder: Path, gz: bool) -> None:
    images, labels = mnist_arrays()
    suffix = ".gz" if gz else ""
    write_file(folder / f"train-images-idx3-ubyte{suffix}", idx_bytes(images))
    write_file(folder / f"train-labels-idx1-ubyte{suffix}", idx_bytes(labels))


def raw_split(cfg: dict):
    """The dataset `cfg["name"]` with cfg's values over its spec's defaults, not standardized."""
    values = {key: value for key, value in cfg.items() if key != "name"}
    return load_dataset(DATASETS.get(cfg["name"]).defaults(**values), 0.2, seed=0, standardize=False)


@pytest.mark.parametrize("name,subfolder,gz", [
    ("mnist", "", False), ("mnist", "", True), ("mnist", "MNIST/raw", True),
    ("fashion_mnist", "", False), ("fashion_mnist", "FashionMNIST/raw", True),
])
def test_idx_images_read_back_in_order_as_nchw_in_unit_range(tmp_path, name, subfolder, gz):
    write_mnist(tmp_path / subfolder, gz)
    data = raw_split({"name": name, "root": str(tmp_path)})
    assert data.input_shape == (1, 28, 28) and data.num_classes == 4
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    assert len(x) == N and x.dtype == torch.float32 and y.dtype == torch.int64
    source = torch.round(x[:, 0, 0, 0] * 255 / 10).long()  # which image each row came from
    assert sorted(source.tolist()) == list(range(N))
    assert torch.equal(y, source % 4)
    assert torch.all(x[:, 0, 3, 7] == 1.0) and x.max() <= 1.0


def test_root_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_mnist(tmp_path / "datasets", gz=True)
    assert len(raw_split({"name": "mnist", "root": "~/datasets"}).x_train) == 16


def cifar_rows(first: int, n: int) -> np.ndarray:
    """Rows of 3072 bytes (1024 red, 1024 green, 1024 blue, each row-major); row r holds r in
    its first byte and its channel number at pixel (2, 5) of each channel."""
    rows = np.zeros((n, 3072), dtype=np.uint8)
    rows[:, 0] = np.arange(first, first + n)
    for channel in range(3):
        rows[:, channel * 1024 + 2 * 32 + 5] = 100 + channel
    return rows


def write_pickle(path: Path, batch: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar10(folder: Path, per_batch: int = 4) -> None:
    for i in range(5):
        first = i * per_batch
        write_pickle(folder / f"data_batch_{i + 1}", {
            b"batch_label": b"training batch", b"data": cifar_rows(first, per_batch),
            b"labels": [r % 4 for r in range(first, first + per_batch)]})


@pytest.mark.parametrize("subfolder", ["cifar-10-batches-py", ""])
def test_cifar10_reads_all_five_batches_channel_planes_in_order(tmp_path, subfolder):
    write_cifar10(tmp_path / subfolder)
    data = raw_split({"name": "cifar10", "root": str(tmp_path)})
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    assert x.shape == (N, 3, 32, 32) and data.num_classes == 4
    source = torch.round(x[:, 0, 0, 0] * 255).long()
    assert sorted(source.tolist()) == list(range(N)) and torch.equal(y, source % 4)
    assert torch.allclose(x[:, :, 2, 5] * 255, torch.tensor([100.0, 101.0, 102.0]).expand(N, 3))


@pytest.mark.parametrize("mode,classes", [("fine", 10), ("coarse", 2)])
def test_cifar100_fine_or_coarse_labels(tmp_path, mode, classes):
    n = 40
    write_pickle(tmp_path / "cifar-100-python" / "train", {
        b"data": cifar_rows(0, n), b"fine_labels": [r % 10 for r in range(n)],
        b"coarse_labels": [r % 2 for r in range(n)]})
    data = load_dataset({"name": "cifar100", "root": str(tmp_path), "label_mode": mode}, 0.5, seed=0,
                        standardize=False)
    assert data.num_classes == classes and data.input_shape == (3, 32, 32)
    source = torch.round(torch.cat([data.x_train, data.x_val])[:, 0, 0, 0] * 255).long()
    assert sorted(source.tolist()) == list(range(n))
    assert torch.equal(torch.cat([data.y_train, data.y_val]), source % classes)


def test_csv_classification_with_named_target_and_chosen_features(tmp_path):
    rows = ["a,b,unused,label"] + [f"{i},{2 * i},{-i},{'cat' if i % 2 else 'dog'}" for i in range(10)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    data = raw_split({"name": "csv", "path": str(tmp_path / "t.csv"), "target": "label",
                      "features": ["a", "b"], "task": "classification"})
    x = torch.cat([data.x_train, data.x_val])
    y = torch.cat([data.y_train, data.y_val])
    assert data.input_shape == (2,) and data.num_classes == 2 and data.task == "classification"
    assert torch.equal(x[:, 1], 2 * x[:, 0])
    assert torch.equal(y, (x[:, 0].long() % 2 == 0).long())  # cat -> 0, dog -> 1 (sorted)


def test_csv_regression_uses_every_other_column_by_default(tmp_path):
    rows = ["x1,y,x2"] + [f"{i},{i * 0.5},{i + 1}" for i in range(10)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    data = raw_split({"name": "csv", "path": str(tmp_path / "r.csv"), "target": "y", "task": "regression"})
    x, y = torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val])
    assert data.task == "regression" and data.input_shape == (2,) and y.dtype == torch.float32
    assert torch.allclose(y, x[:, 0] * 0.5) and torch.equal(x[:, 1], x[:, 0] + 1)


def test_npz_images_get_a_channel_axis(tmp_path):
    x = np.arange(N * 4 * 4, dtype=np.uint16).reshape(N, 4, 4)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(N) % 4)
    data = raw_split({"name": "npz", "path": str(tmp_path / "d.npz"), "task": "classification"})
    assert data.input_shape == (1, 4, 4) and data.num_classes == 4
    rows = torch.cat([data.x_train, data.x_val])
    assert sorted(rows[:, 0, 0, 0].tolist()) == [16.0 * i for i in range(N)]


# ---------------------------------------------------------------- missing and corrupt files

def expect_data_error(cfg: dict, *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        raw_split(cfg)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_missing_files_name_what_is_expected_and_where(tmp_path):
    expect_data_error({"name": "mnist", "root": str(tmp_path)}, "train-images-idx3-ubyte", str(tmp_path))
    expect_data_error({"name": "cifar10", "root": str(tmp_path)}, "data_batch_1", "cifar-10-batches-py")
    expect_data_error({"name": "cifar100", "root": str(tmp_path)}, "train", "cifar-100-python")
    expect_data_error({"name": "npz", "path": str(tmp_path / "no.npz")}, "no.npz")


@pytest.mark.parametrize("damage,fragment", [
    (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "magic"),        # a labels file's magic
    (lambda raw: raw[:-100], "truncated"),
    (lambda raw: raw[:10], "truncated"),
])
def test_corrupt_idx_images(tmp_path, damage, fragment):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    expect_data_error({"name": "mnist", "root": str(tmp_path)}, str(path), fragment)


def test_truncated_gzip_and_mismatched_label_count(tmp_path):
    write_mnist(tmp_path, gz=True)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:-30])
    expect_data_error({"name": "mnist", "root": str(tmp_path)}, str(images))
    write_mnist(tmp_path, gz=True)
    write_file(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(N - 1, np.uint8)))
    expect_data_error({"name": "mnist", "root": str(tmp_path)}, "labels")


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("content", [
    b"not a pickle at all",
    pickle.dumps({b"data": cifar_rows(0, 4)}, protocol=2),                              # no labels
    pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, protocol=2),  # short rows
    pickle.dumps({b"data": cifar_rows(0, 4), b"labels": [0] * 4}, protocol=2)[:-20],       # truncated
    pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=2),                      # code, refused
])
def test_corrupt_cifar_batches(tmp_path, content, capsys):
    write_cifar10(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(content)
    expect_data_error({"name": "cifar10", "root": str(tmp_path)}, "data_batch_3")
    assert "must never run" not in capsys.readouterr().out


def test_csv_missing_column_or_text_features(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,x,0\n2,y,1\n3,z,0\n4,w,1\n")
    cfg = {"name": "csv", "path": str(tmp_path / "t.csv"), "target": "label", "task": "classification"}
    expect_data_error({**cfg, "features": ["a", "c"]}, "no column(s) c", "a, b, label")
    expect_data_error(cfg, "numbers")
    with pytest.raises(ConfigError):
        raw_split({**cfg, "target": None})


def test_npz_without_y_or_not_an_archive(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)))
    expect_data_error({"name": "npz", "path": str(tmp_path / "d.npz")}, "x and y")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    expect_data_error({"name": "npz", "path": str(tmp_path / "bad.npz")}, "bad.npz")


@pytest.mark.parametrize("prepare", ["missing", "corrupt"])
def test_cli_reports_data_errors_in_one_line_with_exit_code_3(optlab, tmp_path, prepare):
    if prepare == "corrupt":
        write_mnist(tmp_path / "data", gz=True)
        (tmp_path / "data" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    result = optlab("train", "data=mnist", "trainer.epochs=1", "trainer.progress=false")
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optlab: error:") and "Traceback" not in result.stderr
    assert "train-labels-idx1-ubyte" in lines[0] or "train-images-idx3-ubyte" in lines[0]


# ---------------------------------------------------------------- test files

def write_mnist_test(folder: Path, n: int, gz: bool) -> None:
    """t10k files: test image i filled with 200 + i (apart from every training image's value)."""
    images = np.repeat((200 + np.arange(n, dtype=np.uint8))[:, None, None], 28 * 28).reshape(n, 28, 28)
    suffix = ".gz" if gz else ""
    write_file(folder / f"t10k-images-idx3-ubyte{suffix}", idx_bytes(images))
    write_file(folder / f"t10k-labels-idx1-ubyte{suffix}", idx_bytes((np.arange(n) % 4).astype(np.uint8)))


@pytest.mark.parametrize("name,subfolder,gz", [("mnist", "", True), ("mnist", "MNIST/raw", False),
                                               ("fashion_mnist", "FashionMNIST/raw", True)])
def test_idx_test_files_are_the_test_split_apart_from_train_and_validation(tmp_path, name, subfolder, gz):
    write_mnist(tmp_path / subfolder, gz)
    write_mnist_test(tmp_path / subfolder, 6, gz)
    data = raw_split({"name": name, "root": str(tmp_path)})
    assert data.has_test and data.x_test.shape == (6, 1, 28, 28)
    assert torch.round(data.x_test[:, 0, 0, 0] * 255).long().tolist() == [200 + i for i in range(6)]
    assert data.y_test.tolist() == [i % 4 for i in range(6)]
    assert len(data.x_train) + len(data.x_val) == N  # the training files only


def test_without_test_files_there_is_no_test_split(tmp_path):
    write_mnist(tmp_path, gz=False)
    assert not raw_split({"name": "mnist", "root": str(tmp_path)}).has_test


def test_test_images_without_labels_name_the_missing_file(tmp_path):
    write_mnist(tmp_path, gz=False)
    write_mnist_test(tmp_path, 4, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    expect_data_error({"name": "mnist", "root": str(tmp_path)}, "t10k-labels-idx1-ubyte")


def test_test_files_and_a_test_fraction_conflict(tmp_path):
    write_mnist(tmp_path, gz=False)
    write_mnist_test(tmp_path, 4, gz=False)
    with pytest.raises(ConfigError, match=r"trainer.test_fraction=0.1: data=mnist has its own test files"):
        load_dataset({"name": "mnist", "root": str(tmp_path)}, 0.2, seed=0, test_fraction=0.1)


def test_cifar10_test_batch_and_cifar100_test_are_the_test_split(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch",
                 {b"data": cifar_rows(100, 5), b"labels": [r % 4 for r in range(100, 105)]})
    data = raw_split({"name": "cifar10", "root": str(tmp_path)})
    assert torch.round(data.x_test[:, 0, 0, 0] * 255).long().tolist() == list(range(100, 105))
    assert data.y_test.tolist() == [r % 4 for r in range(100, 105)] and len(data.x_train) + len(data.x_val) == N
    write_pickle(tmp_path / "cifar-100-python" / "train", {
        b"data": cifar_rows(0, 20), b"fine_labels": [r % 10 for r in range(20)], b"coarse_labels": [0] * 20})
    write_pickle(tmp_path / "cifar-100-python" / "test", {
        b"data": cifar_rows(50, 3), b"fine_labels": [7, 8, 9], b"coarse_labels": [0, 0, 0]})
    data = load_dataset({"name": "cifar100", "root": str(tmp_path), "label_mode": "fine"}, 0.5, seed=0, standardize=False)
    assert data.y_test.tolist() == [7, 8, 9] and data.num_classes == 10
    assert torch.round(data.x_test[:, 0, 0, 0] * 255).long().tolist() == [50, 51, 52]
