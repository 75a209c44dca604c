"""A sweep file -> a frozen SweepSpec: parameter types and grids; unreadable files are one line."""
from __future__ import annotations

import dataclasses

import pytest
from testkit import tiny_spec

from optlab.cli.app import main
from optlab.sweep.spec import parse_space


def test_space_types_and_grid_values():
    space = parse_space({"model.depth": {"type": "int", "low": 1, "high": 3},
                         "optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                         "norm": ["none", "batch"]})
    assert [p.kind for p in space] == ["int", "float", "categorical"]
    assert space[0].values_for_grid(4) == [1, 2, 3]
    assert space[1].values_for_grid(3) == pytest.approx([1e-3, 1e-2, 1e-1])


def test_the_spec_is_frozen_and_its_sequences_are_tuples(tmp_path):
    spec = tiny_spec(tmp_path, trials=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.trials = 3
    assert isinstance(spec.base, tuple) and isinstance(spec.space, tuple)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"metric: val_acc\nbase: [caf\xe9]\n"])
def test_a_binary_or_non_utf8_sweep_file_exits_2_in_one_line(tmp_path, capsys, content):
    (tmp_path / "bad.yaml").write_bytes(content)
    assert main(["sweep", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml" in err


def test_at_says_which_epoch_values_a_run_and_an_unknown_one_exits_2(tmp_path, capsys):
    from testkit import write_sweep

    from optlab.sweep.spec import metric_label

    assert tiny_spec(tmp_path, trials=1).at == "best"  # what sweeps did before `at` existed
    assert metric_label("val_acc", "best") == "val_acc (validation, best epoch)"
    assert metric_label("train_loss", "final") == "train_loss (training, final epoch)"
    assert main(["sweep", str(write_sweep(tmp_path, at="last"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "optlab: error: at 'last': choose from: best, final (which epoch of each run is its value)"
