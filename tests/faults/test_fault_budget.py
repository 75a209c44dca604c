"""A sweep's budget is spent on trials, not on a broken configuration: a device this machine
lacks is refused before the first trial (exit 2, as `optlab train` refuses it), and trials
that a configuration error failed count against the budget of the command that ran them,
never against a later command that fixed it."""
from __future__ import annotations

import csv

import pytest
import torch
from faultkit import optlab
from testkit import write_sweep


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_refused_before_the_first_trial(tmp_path, capsys):
    from optlab.cli import main

    path = write_sweep(tmp_path, trials=3)
    assert main(["sweep", str(path), "trainer.device=cuda"]) == 2
    err = capsys.readouterr().err
    assert "optlab: error: trainer.device=cuda: CUDA is not available here" in err
    assert not list((tmp_path / "outputs").rglob("trials.csv")), "a trial was started"


BROKEN = "def build(cfg, input_shape, out_dim):\n    return None  # not a module: a configuration error at run time\n"
FIXED = ("import math, torch\n"
         "def build(cfg, input_shape, out_dim):\n"
         "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), out_dim))\n")


@pytest.mark.slow
def test_trials_failed_by_a_configuration_error_do_not_use_up_a_later_commands_budget(tmp_path):
    (tmp_path / "mynets.py").write_text(BROKEN)
    path = write_sweep(tmp_path, trials=3, base=["data=digits", "model=custom", "model._target_=mynets:build",
                                                 "optimizer=sgd", "trainer.epochs=1", "trainer.progress=false",
                                                 f"trainer.out_dir={tmp_path / 'outputs'}"])
    args = ("sweep", str(path))
    broken = optlab(*args, cwd=tmp_path)
    assert broken.returncode == 4, broken.stderr  # every trial failed: this command's budget is spent
    (tmp_path / "mynets.py").write_text(FIXED)
    fixed = optlab(*args, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    with open(tmp_path / "outputs" / "sweeps" / "tiny" / "trials.csv", newline="") as f:
        statuses = [r["status"] for r in csv.DictReader(f)]
    assert statuses.count("failed") == 3 and statuses.count("completed") == 3, statuses
