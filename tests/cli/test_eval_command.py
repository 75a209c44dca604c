"""optlab eval: a run's model.pt on its test split (reproducing summary.json's test_acc and
test_loss), its validation split, or other data of the same shape; MNIST-format files
written here in the real IDX layout, t10k test files included."""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from optlab.runs.files import read_json


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_pair(folder: Path, prefix: str, n: int, seed: int) -> None:
    """n 28x28 images of 4 classes, class k a bright bar in row block k plus noise, gzipped."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 4).astype(np.uint8)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 7 * k:7 * k + 7, 4:24] = rng.integers(150, 256, size=(7, 20))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))


MNIST_RUN = ["data=mnist", "model=mlp", "model.width=16", "trainer.epochs=3", "trainer.progress=false"]


def mnist_run(optlab, tmp_path: Path, *extra: str) -> Path:
    write_idx_pair(tmp_path / "data", "train", 200, seed=0)
    write_idx_pair(tmp_path / "data", "t10k", 60, seed=1)
    result = optlab("train", *MNIST_RUN, *extra)
    assert result.returncode == 0, result.stderr
    return tmp_path / result.stdout.strip().splitlines()[-1]


def eval_json(optlab, *args: str) -> dict:
    result = optlab("eval", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_an_mnist_run_measures_its_test_files_and_eval_reproduces_it(optlab, tmp_path):
    run = mnist_run(optlab, tmp_path)
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and 0 <= summary["best_epoch"] < 3
    assert isinstance(summary["test_acc"], float) and isinstance(summary["test_loss"], float)
    saved = torch.load(run / "model.pt", weights_only=True)
    assert saved["num_classes"] == 4 and saved["input_shape"] == [1, 28, 28] and saved["task"] == "classification"
    assert saved["config"]["model"]["name"] == "mlp" and isinstance(saved["config"], dict)
    assert saved["mean"].shape == (1, 1, 1) and saved["std"].shape == (1, 1, 1)
    measured = eval_json(optlab, str(run), "--split", "test")
    assert (measured["n"], measured["acc"], measured["loss"]) == (60, summary["test_acc"], summary["test_loss"])
    val = eval_json(optlab, str(run), "--split", "val")
    best_row = pd.read_csv(run / "metrics.csv").iloc[summary["best_epoch"]]
    assert (val["acc"], val["loss"]) == (best_row["val_acc"], best_row["val_loss"])


def test_the_model_file_alone_rebuilds_the_network(optlab, tmp_path):
    """What a user outside optlab does: torch.load, build, load_state_dict, standardize, predict."""
    from optlab.data.split import load_dataset
    from optlab.nn.models import build_model

    run = mnist_run(optlab, tmp_path)
    saved = torch.load(run / "model.pt", weights_only=True)
    model = build_model(saved["config"], tuple(saved["input_shape"]), saved["output_dim"]).eval()
    model.load_state_dict(saved["state_dict"])
    raw = load_dataset(saved["config"]["data"] | {"root": str(tmp_path / "data")}, 0.2, 0, standardize=False)
    with torch.no_grad():
        predicted = model((raw.x_test - saved["mean"]) / saved["std"]).argmax(1)
    accuracy = (predicted == raw.y_test).double().mean().item()
    assert accuracy == read_json(run / "summary.json")["test_acc"]


def test_other_data_of_the_same_shape_and_the_errors(optlab, tmp_path):
    run = mnist_run(optlab, tmp_path)
    write_idx_pair(tmp_path / "more", "train", 40, seed=5)
    other = eval_json(optlab, str(run), "--data", "data=mnist", "data.root=more")
    assert other["n"] == 40 and other["data"] == "data=mnist data.root=more" and 0 <= other["acc"] <= 1
    for args, fragment in [(["--data", "data=moons"], "inputs of shape [2]; the run's model takes [1, 28, 28]"),
                           (["--split", "train"], "--split train: choose from: val, test"),
                           (["--data", "optimizer=adam"], "only data overrides")]:
        result = optlab("eval", str(run), *args)
        assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    no_test = optlab("train", "trainer.epochs=1", "trainer.progress=false")
    result = optlab("eval", no_test.stdout.strip().splitlines()[-1])
    assert result.returncode == 2 and "has no test split" in result.stderr
    assert optlab("eval", str(tmp_path)).returncode == 3  # not a run folder: no model.pt


def test_report_shows_the_test_numbers_of_the_runs_summaries(optlab, tmp_path):
    for seed in (0, 1):
        optlab("train", "trainer.epochs=2", "trainer.progress=false", "trainer.test_fraction=0.2",
               f"trainer.seed={seed}")
    result = optlab("report", "outputs", "--format", "csv")
    assert result.returncode == 0, result.stderr
    tests = [read_json(p)["test_acc"] for p in sorted((tmp_path / "outputs" / "runs").glob("*/summary.json"))]
    report = pd.read_csv(tmp_path / "outputs" / "report-val_acc-final" / "report.csv")
    assert report.loc[0, "test_mean"] == np.mean(tests) and report.loc[0, "n"] == 2


def test_other_data_keeps_the_classes_its_overrides_name():
    """--data data=digits data.keep_classes=[3,7] is what a run with those overrides trained on:
    those classes only, relabelled 0 and 1."""
    from optlab.config.compose import as_plain, compose
    from optlab.training.export import other_data

    data_cfg = as_plain(compose(["data=digits", "data.keep_classes=[3,7]"])["data"])
    saved = {"input_shape": [1, 8, 8], "task": "classification", "num_classes": 2,
             "mean": torch.zeros(1, 1, 1), "std": torch.ones(1, 1, 1)}
    x, y = other_data(data_cfg, saved, seed=0)
    assert sorted(torch.unique(y).tolist()) == [0, 1] and len(x) == len(y) < 400


def test_a_model_file_optlab_did_not_write_exits_3(optlab, tmp_path):
    (tmp_path / "foreign").mkdir()
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "foreign" / "model.pt")  # a bare state_dict
    result = optlab("eval", str(tmp_path / "foreign"))
    assert result.returncode == 3 and "does not hold a model optlab can rebuild" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_run_path_is_shown_whole_on_its_own_line(capsys):
    from optlab.cli.eval import _show

    path = "outputs/runs/20261207-104252-digits-mlp-sgd-with-a-long-name-" + "x" * 60
    _show({"run": path, "data": "test", "n": 359, "loss": 0.1, "acc": 0.97}, "table")
    assert f"run: {path}" in capsys.readouterr().out.splitlines()
