"""Damaged files: data of every format, checkpoints, run folders. Each is one line and exit 3
(bad data or checkpoint), never a traceback or exit 1; a temp file a killed writer left next
to a good checkpoint is cleaned up on resume."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from faultkit import SMALL_RUN, one_error_line, only_run, optlab, summary, temp_files

pytestmark = pytest.mark.slow  # real processes


def damage_middle(path, count: int = 64) -> None:
    """Overwrite bytes in the middle of a compressed stream: its header stays valid."""
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + count] = bytes((b ^ 0x5A) for b in raw[middle:middle + count])
    path.write_bytes(bytes(raw))


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_files(root, damage: str) -> None:
    rng = np.random.default_rng(0)
    images, labels = idx_bytes(rng.integers(0, 255, (200, 28, 28))), idx_bytes(np.arange(200) % 10)
    if damage == "truncated":
        images = images[:-100]
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    if damage == "deflate":
        damage_middle(root / "train-images-idx3-ubyte.gz")


def cifar_files(root, damage: str) -> None:
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8), b"labels": list(range(10)) * 2}
        raw = pickle.dumps(batch)
        (root / f"data_batch_{i}").write_bytes(raw[: len(raw) // 2] if damage == "truncated" and i == 3 else raw)


def npz_file(root, damage: str) -> None:
    rng = np.random.default_rng(0)
    np.savez_compressed(root / "d.npz", x=rng.normal(size=(300, 4)), y=np.arange(300) % 3)
    if damage == "deflate":
        damage_middle(root / "d.npz", 32)
    elif damage == "truncated":
        (root / "d.npz").write_bytes((root / "d.npz").read_bytes()[:-200])


def csv_file(root, damage: str) -> None:
    lines = ["a,b,label"] + [f"{i},{i * 2},{i % 2}" for i in range(60)]
    if damage == "missing cell":
        lines[7] = "6,,0"
    (root / "d.csv").write_text("\n".join(lines) + "\n")


CASES = {
    "mnist truncated": (mnist_files, "truncated", ["data=mnist", "data.root=."], "truncated"),
    "mnist damaged deflate": (mnist_files, "deflate", ["data=mnist", "data.root=."], "corrupt"),
    "cifar10 truncated": (cifar_files, "truncated", ["data=cifar10", "data.root=.", "model=mlp"], "data_batch_3"),
    "npz damaged deflate": (npz_file, "deflate", ["data=npz", "data.path=d.npz"], "d.npz"),
    "npz truncated": (npz_file, "truncated", ["data=npz", "data.path=d.npz"], "d.npz"),
    "csv missing cell": (csv_file, "missing cell", ["data=csv", "data.path=d.csv", "data.target=label"], "line 8"),
}


@pytest.mark.parametrize("case", CASES)
def test_damaged_data_of_every_format_exits_3_in_one_line(tmp_path, case):
    write, damage, overrides, named = CASES[case]
    write(tmp_path, damage)
    result = optlab("train", *overrides, "trainer.epochs=1", "trainer.progress=false", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    one_error_line(result.stderr, named)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    optlab("train", *SMALL_RUN, "trainer.epochs=1", f"trainer.out_dir={root}", cwd=root,
                  fault="train.after_loop=kill")  # killed after its checkpoint: resumable
    return only_run(root)


def copy_run(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / run.name)


@pytest.mark.parametrize("damage, named", [
    (lambda run: (run / "checkpoint.pt").write_bytes(b"\x00garbage" * 10), "unreadable checkpoint"),
    (lambda run: (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:300]), "unreadable checkpoint"),
    (lambda run: (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("width: 16", "width: 32")),
     "does not match the run's config.yaml"),
    (lambda run: (run / "config.yaml").write_text("model: [unclosed\n  - : :"), "damaged"),
])
def test_a_damaged_run_folder_exits_3_in_one_line(finished_run, tmp_path, damage, named):
    run = copy_run(finished_run, tmp_path)
    damage(run)
    result = optlab("train", "--resume", str(run), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    one_error_line(result.stderr, named)


def test_stray_temp_files_next_to_a_good_checkpoint_go_on_resume(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    (run / ".checkpoint.pt.4242.tmp").write_bytes(b"half a checkpoint")
    result = optlab("train", "--resume", str(run), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert temp_files(run) == [] and summary(run)["status"] == "completed"
