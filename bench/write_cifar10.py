"""Write a CIFAR-10-format folder (data_batch_1..5, test_batch, batches.meta) of generated
shape images, for benchmarks and GPU checks on machines without the real files.

The files have exactly the layout of the python version of CIFAR-10: pickled dicts with
b"data" (uint8 rows of 3072 = red, green, blue 32x32 planes) and b"labels"; the images are
optlab's `shapes` dataset (5 learnable classes), so accuracy means something.

    python bench/write_cifar10.py /tmp/cifar              # 50,000 training + 10,000 test images
    optlab train data=cifar10 data.root=/tmp/cifar model=resnet
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from optlab.data._base import DATASETS
from optlab.data.generated import load_shapes


def batch_rows(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    pool = load_shapes(DATASETS.get("shapes").defaults(n_samples=n, size=32), seed)
    pixels = np.clip(pool.x.numpy() * 255, 0, 255).round().astype(np.uint8)
    return pixels.reshape(n, 3 * 32 * 32), pool.y.tolist()


def write_batch(path: Path, label: bytes, n: int, seed: int) -> None:
    data, labels = batch_rows(n, seed)
    path.write_bytes(pickle.dumps({b"batch_label": label, b"data": data, b"labels": labels}, protocol=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-batch", type=int, default=10000, help="images per file (CIFAR-10 has 10,000)")
    args = parser.parse_args()
    folder = args.folder / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        write_batch(folder / f"data_batch_{i}", f"training batch {i} of 5".encode(), args.per_batch, seed=i)
    write_batch(folder / "test_batch", b"testing batch 1 of 1", args.per_batch, seed=0)
    names = [b"disc", b"square", b"diamond", b"cross", b"ring"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    print(f"wrote {5 * args.per_batch} training and {args.per_batch} test images to {folder}")


if __name__ == "__main__":
    main()
