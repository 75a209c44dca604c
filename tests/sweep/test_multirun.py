"""optlab train -m: Hydra's sweep syntax expanded to a grid, run one after another."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from optlab.config.compose import group_options
from optlab.errors import ConfigError
from optlab.sweep.multirun import expand, run_grid, run_name


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
    from optlab.cli.app import main

    code = main(["train", "-m", f"trainer.out_dir={tmp_path}", "trainer.epochs=1", "trainer.progress=false",
                     "model.width=8", "optimizer.lr=0.05,0.2", "model.depth=1,2"])
    assert code == 0
    *run_dirs, grid_dir = capsys.readouterr().out.strip().splitlines()  # the multirun folder comes last
    assert len(run_dirs) == 4
    seen = set()
    for run in run_dirs:
        cfg = yaml.safe_load(open(f"{run}/config.yaml"))
        seen.add((cfg["optimizer"]["lr"], cfg["model"]["depth"]))
    assert seen == {(0.05, 1), (0.05, 2), (0.2, 1), (0.2, 2)}


def test_glob_picks_group_options_including_a_users_own(tmp_path):
    assert expand(["optimizer=glob(ada*)", "c=3"]) == [["optimizer=adadelta", "c=3"], ["optimizer=adagrad", "c=3"],
                                                       ["optimizer=adam", "c=3"], ["optimizer=adamw", "c=3"]]
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "adafactor.yaml").write_text("name: adam\nlr: 0.001\n")
    chosen = [combo[0] for combo in expand(["optimizer=glob(ada*,exclude=adamw)"], str(tmp_path))]
    assert chosen == ["optimizer=adadelta", "optimizer=adafactor", "optimizer=adagrad", "optimizer=adam"]
    assert [c[0] for c in expand(["norm=glob(*)"])] == [f"norm={name}" for name in group_options("norm")]


def test_glob_needs_a_group_and_a_match():
    with pytest.raises(ConfigError, match="glob"):
        expand(["optimizer.lr=glob(*)"])
    with pytest.raises(ConfigError, match="matches no optimizer option; choose from: adadelta, adagrad"):
        expand(["optimizer=glob(zz*)"])


def test_run_names_are_the_varying_overrides_sorted_and_safe_as_folder_names():
    assert run_name(["trainer.seed=1", "norm=batch"]) == "norm=batch,trainer.seed=1"
    assert run_name(["data.path=in/x y.csv"]) == "data.path=in_x_y.csv"


def test_a_multirun_writes_one_folder_whose_runs_are_named_by_what_varies(tmp_path, capsys):
    import shutil

    from optlab.cli.app import main
    from optlab.report.load import load

    code = main(["train", "-m", f"trainer.out_dir={tmp_path}", "trainer.epochs=1", "trainer.progress=false",
                 "model.width=8", "trainer.seed=0,1", "norm=batch,layer"])
    assert code == 0
    *run_dirs, grid_dir = capsys.readouterr().out.strip().splitlines()
    grid = Path(grid_dir)
    assert grid.parent == tmp_path / "multirun" and len(run_dirs) == 4
    assert all(Path(run).parent == grid for run in run_dirs)
    names = {yaml.safe_load(open(f"{run}/config.yaml"))["trainer"]["name"] for run in run_dirs}
    assert names == {f"norm={norm},trainer.seed={seed}" for norm in ("batch", "layer") for seed in (0, 1)}
    assert yaml.safe_load((grid / "multirun.yaml").read_text())["overrides"][-1] == "norm=batch,layer"

    other = tmp_path / "multirun" / "other"  # a second multirun beside it is not part of this grid
    shutil.copytree(run_dirs[0], other / Path(run_dirs[0]).name)
    assert len(load([grid]).runs) == 4
    assert len(load([tmp_path / "multirun"]).runs) == 5


def test_a_multirun_with_cfg_prints_every_config_and_makes_no_folder(tmp_path, capsys):
    from optlab.cli.app import main

    assert main(["train", "-m", "optimizer=sgd,adam", f"trainer.out_dir={tmp_path}", "--cfg"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["optimizer"]["name"] for d in documents] == ["sgd", "adam"]
    assert [d["trainer"]["name"] for d in documents] == ["optimizer=sgd", "optimizer=adam"]
    assert list(tmp_path.iterdir()) == []


def test_a_multirun_goes_to_one_out_dir(tmp_path):
    with pytest.raises(ConfigError, match="trainer.out_dir"):
        run_grid([f"trainer.out_dir={tmp_path / 'a'},{tmp_path / 'b'}"], None)
    assert list(tmp_path.iterdir()) == []


def test_the_results_table_shows_each_varying_key_as_a_column_never_cut(capsys, monkeypatch):
    from optlab.sweep.multirun import _print_table

    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal
    results = [{"run": f"model.width={w},optimizer.lr={lr}", "overrides": [f"model.width={w}", f"optimizer.lr={lr}",
                                                                         "trainer.epochs=1"],
                "status": "completed", "best_val_acc": 0.9, "final_val_loss": 0.3, "run_dir": "x"}
               for w in (64, 1024) for lr in (0.01, 0.1)]
    _print_table(results)
    err = capsys.readouterr().err
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in err.splitlines() if line.startswith("│")]
    assert [row[:2] for row in cells] == [["64", "0.01"], ["64", "0.1"], ["1024", "0.01"], ["1024", "0.1"]]
    assert "…" not in err and "trainer.epochs" not in err  # a key that does not vary is no column
