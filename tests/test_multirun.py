"""optlab train -m: Hydra's sweep syntax expanded to a grid, run one after another."""
from __future__ import annotations

import pytest
import yaml

from runner.errors import ConfigError
from runner.multirun import expand, run_grid


def test_expand_is_the_product_of_the_sweep_values_in_order():
    assert expand(["a=1,2", "b=x,y", "c=3"]) == [["a=1", "b=x", "c=3"], ["a=1", "b=y", "c=3"],
                                                 ["a=2", "b=x", "c=3"], ["a=2", "b=y", "c=3"]]
    assert expand(["model.depth=range(1,4)"]) == [["model.depth=1"], ["model.depth=2"], ["model.depth=3"]]


def test_intervals_cannot_be_enumerated():
    with pytest.raises(ConfigError, match="optlab sweep"):
        expand(["optimizer.lr=interval(0.1,1.0)"])


def test_every_combination_is_validated_before_the_first_run(tmp_path):
    with pytest.raises(ConfigError, match="optimizer.lr"):
        run_grid([f"trainer.out_dir={tmp_path}", "optimizer.lr=0.1,-1"], None)
    assert not (tmp_path / "runs").exists()


def test_grid_runs_each_combination_into_its_own_run_folder(tmp_path, capsys):
    from runner.cli import main

    code = main(["train", "-m", f"trainer.out_dir={tmp_path}", "trainer.epochs=1", "trainer.progress=false",
                     "model.width=8", "optimizer.lr=0.05,0.2", "model.depth=1,2"])
    assert code == 0
    run_dirs = capsys.readouterr().out.strip().splitlines()
    assert len(run_dirs) == 4
    seen = set()
    for run in run_dirs:
        cfg = yaml.safe_load(open(f"{run}/config.yaml"))
        seen.add((cfg["optimizer"]["lr"], cfg["model"]["depth"]))
    assert seen == {(0.05, 1), (0.05, 2), (0.2, 1), (0.2, 2)}
