"""Datasets already on disk, in their standard formats; nothing is ever downloaded.

    mnist, fashion_mnist   IDX files (gzipped or not) in data.root; t10k-* files: the test split
    cifar10                python pickle batches data_batch_1..5 (in cifar-10-batches-py/ or root); test_batch
    cifar100               python pickle `train` (in cifar-100-python/ or root), fine or coarse labels; `test`
    csv                    a table: a target column by name, feature columns (default: all others)
    npz                    arrays x and y

Images come back NCHW float32 in [0, 1]; the shared code splits and standardizes them.
A missing file is a DataError naming the files expected and the folders searched; a
truncated or corrupt file is a DataError saying what is wrong with it.
"""
from __future__ import annotations

import gzip
import io
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from optlab.data._base import DATASETS, ROOT, TASK, DatasetSpec, Pool
from optlab.errors import ConfigError, DataError
from optlab.registry import Key


# ---------------------------------------------------------------- finding files

def data_root(cfg: dict) -> Path:
    """data.root, relative to the working directory, with ~ expanded."""
    return Path(str(cfg["root"])).expanduser()


def find_file(folders: list[Path], names: list[str], dataset: str) -> Path:
    """The first of `names` present in the first folder that has one; else a DataError."""
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    where = ", ".join(str(f) for f in folders)
    raise DataError(f"data={dataset}: {' or '.join(names)} not found in {where} "
                    f"(nothing is downloaded; put the file there or set data.root=DIR)")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when its name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); the file is truncated or corrupt") from exc


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)

IDX_UBYTE = 0x08  # the only element type the MNIST-style files use


def parse_idx(raw: bytes, path: Path, expected_dims: int) -> np.ndarray:
    """An IDX array: magic (0, 0, type, ndim), ndim big-endian uint32 sizes, then the data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or raw[3] != expected_dims:
        found = raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes"
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {expected_dims} dimension(s) "
                        f"(magic {found}, expected 000008{expected_dims:02x})")
    header_size = 4 + 4 * expected_dims
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=expected_dims, offset=4))
    expected_size = header_size + int(np.prod(shape))
    if len(raw) != expected_size:
        raise DataError(f"{path}: {len(raw)} bytes, but its header {shape} needs {expected_size}; "
                        f"the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def load_idx_pair(cfg: dict, dataset: str, subfolders: list[str]) -> Pool:
    """The train-* files, and the t10k-* test files when present (in the same folders)."""
    root = data_root(cfg)
    folders = [root, *(root / sub for sub in subfolders)]
    x, y = read_idx_files(folders, "train", dataset)
    if not any(optional_file(folders, name) for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz")):
        return Pool(x, y)
    x_test, y_test = read_idx_files(folders, "t10k", dataset)
    if x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"data={dataset}: the t10k images are {list(x_test.shape[2:])}, the train images {list(x.shape[2:])}")
    return Pool(x, y, x_test=x_test, y_test=y_test)


def read_idx_files(folders: list[Path], prefix: str, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, H, W) in [0, 1], labels) from PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte."""
    images_path = find_file(folders, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz"], dataset)
    labels_path = find_file(folders, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels-idx1-ubyte.gz"], dataset)
    images = parse_idx(read_bytes(images_path), images_path, expected_dims=3)
    labels = parse_idx(read_bytes(labels_path), labels_path, expected_dims=1)
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, H, W) in [0, 1]
    return x, torch.from_numpy(labels.astype(np.int64))


def load_mnist(cfg: dict, seed: int) -> Pool:
    return load_idx_pair(cfg, "mnist", ["mnist", "MNIST/raw"])


def load_fashion_mnist(cfg: dict, seed: int) -> Pool:
    return load_idx_pair(cfg, "fashion_mnist", ["fashion_mnist", "FashionMNIST/raw"])


# ---------------------------------------------------------------- CIFAR pickles

class ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a pickle that asks for anything else
    (which could run code) is refused as corrupt."""

    ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":  # pickles written with numpy < 2
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, labels (n,)) from one CIFAR pickle batch."""
    try:
        batch = ArrayUnpickler(io.BytesIO(read_bytes(path)), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"{path}: not a readable CIFAR pickle batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{path}: not a CIFAR batch (expected keys b'data' and {label_key!r})")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{path}: b'data' is {data.dtype}{list(data.shape)} with {len(labels)} labels; "
                        f"expected uint8 rows of 3072 bytes, one label each")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def cifar_pool(parts: list[tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray] | None = None) -> Pool:
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    pool = Pool(torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels))
    if test is not None:
        pool.x_test, pool.y_test = torch.from_numpy(test[0].astype(np.float32) / 255.0), torch.from_numpy(test[1])
    return pool


def optional_file(folders: list[Path], name: str) -> Path | None:
    return next((f / name for f in folders if (f / name).is_file()), None)


def load_cifar10(cfg: dict, seed: int) -> Pool:
    root = data_root(cfg)
    folders = [root / "cifar-10-batches-py", root]
    paths = [find_file(folders, [f"data_batch_{i}"], "cifar10") for i in range(1, 6)]
    test = optional_file(folders, "test_batch")
    return cifar_pool([read_cifar_batch(p, b"labels") for p in paths],
                      None if test is None else read_cifar_batch(test, b"labels"))


def load_cifar100(cfg: dict, seed: int) -> Pool:
    label_key = f"{cfg['label_mode']}_labels".encode()
    root = data_root(cfg)
    folders = [root / "cifar-100-python", root]
    path = find_file(folders, ["train"], "cifar100")
    test = optional_file(folders, "test")
    return cifar_pool([read_cifar_batch(path, label_key)], None if test is None else read_cifar_batch(test, label_key))


# ---------------------------------------------------------------- tables

def table_path(cfg: dict, dataset: str) -> Path:
    if not cfg.get("path"):
        raise ConfigError(f"data={dataset}: set data.path=FILE")
    path = Path(str(cfg["path"])).expanduser()
    if not path.is_file():
        raise DataError(f"data={dataset}: {path} not found (data.path is relative to {Path.cwd()})")
    return path


def class_indices(labels: np.ndarray) -> torch.Tensor:
    """Class labels of any kind (ints, strings) -> 0..K-1 in sorted order of the labels."""
    _, codes = np.unique(labels, return_inverse=True)
    return torch.from_numpy(codes.astype(np.int64).reshape(-1))


def targets(labels: np.ndarray, task: str, source: Path) -> torch.Tensor:
    if task == "classification":
        return class_indices(labels)
    try:
        return torch.from_numpy(np.asarray(labels, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: regression targets must be numbers ({exc})") from exc


def load_csv(cfg: dict, seed: int) -> Pool:
    import pandas as pd

    path, task = table_path(cfg, "csv"), str(cfg["task"])
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: not a readable CSV table ({type(exc).__name__}: {' '.join(str(exc).split())})") from exc
    target = cfg.get("target")
    if not target:
        raise ConfigError(f"data=csv: set data.target=COLUMN (columns: {', '.join(map(str, table.columns))})")
    features = list(cfg.get("features") or [c for c in table.columns if c != target])
    missing = [c for c in [target, *features] if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(map(str, missing))}; "
                        f"columns are: {', '.join(map(str, table.columns))}")
    try:
        x = table[features].to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: feature columns must be numbers ({' '.join(str(exc).split())})") from exc
    missing_cells = table[[target, *features]].isna()
    if missing_cells.to_numpy().any():
        row = int(missing_cells.any(axis=1).to_numpy().argmax())
        columns = [str(c) for c in missing_cells.columns[missing_cells.iloc[row].to_numpy()]]
        raise DataError(f"{path}: line {row + 2} has no value in column(s) {', '.join(columns)} "
                        f"(line 1 is the header; fill or drop such rows)")
    return Pool(torch.from_numpy(x), targets(table[target].to_numpy(), task, path), task)


def load_npz(cfg: dict, seed: int) -> Pool:
    path, task = table_path(cfg, "npz"), str(cfg["task"])
    try:
        with np.load(path, allow_pickle=False) as archive:
            x, y = (archive[k] for k in ("x", "y")) if {"x", "y"} <= set(archive.files) else (None, None)
            files = archive.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from exc
    if x is None:
        raise DataError(f"{path}: expected arrays x and y; it holds: {', '.join(files) or '(nothing)'}")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} rows but y has {len(y)}")
    return Pool(npz_features(x, path), targets(y, task, path), task)


def npz_features(x: np.ndarray, path: Path) -> torch.Tensor:
    """x as float32 (N, D) or (N, C, H, W); (N, H, W) images get a channel axis."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise DataError(f"{path}: x has shape {list(x.shape)}; expected (N, D), (N, H, W) or (N, C, H, W)")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: x holds {x.dtype}, not numbers")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


IDX_FILES = "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]"
PATH = Key("path", None, kind=str)  # relative to the working directory

DATASETS.add(DatasetSpec(
    name="mnist", load=load_mnist, images=True, from_disk=True, keys=(ROOT,),
    description=f"MNIST handwritten digits (60,000 28x28 grey images, 10 classes) from the IDX files you have: "
                f"{IDX_FILES} in ROOT, ROOT/mnist or ROOT/MNIST/raw; t10k-* files there are the test split."))
DATASETS.add(DatasetSpec(
    name="fashion_mnist", load=load_fashion_mnist, images=True, from_disk=True, keys=(ROOT,),
    description=f"Fashion-MNIST (60,000 28x28 grey images of clothes, 10 classes) from the IDX files you have: "
                f"{IDX_FILES} in ROOT, ROOT/fashion_mnist or ROOT/FashionMNIST/raw; t10k-* files there are the test split."))
DATASETS.add(DatasetSpec(
    name="cifar10", load=load_cifar10, images=True, from_disk=True, keys=(ROOT,),
    description="CIFAR-10 (50,000 32x32 colour images, 10 classes) from the python pickle batches "
                "data_batch_1..5 in ROOT/cifar-10-batches-py or ROOT; test_batch there is the test split."))
DATASETS.add(DatasetSpec(
    name="cifar100", load=load_cifar100, images=True, from_disk=True,
    keys=(ROOT, Key("label_mode", "fine", choices=("fine", "coarse"))),
    description="CIFAR-100 (50,000 32x32 colour images) from the python pickle `train` in "
                "ROOT/cifar-100-python or ROOT; `test` there is the test split."))
DATASETS.add(DatasetSpec(
    name="csv", load=load_csv, from_disk=True,
    keys=(PATH, Key("target", None, kind=str), Key("features", None, kind=list), TASK),
    description="Your own table: one row per sample with a header row; numeric feature columns. "
                "optlab train data=csv data.path=table.csv data.target=label"))
DATASETS.add(DatasetSpec(
    name="npz", load=load_npz, from_disk=True, keys=(PATH, TASK),
    description="Your own arrays: a .npz file holding x (N, D), (N, H, W) or (N, C, H, W) and y (N,)."))
