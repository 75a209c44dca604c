"""`optlab rerun`: a sweep's best configuration trained again with fresh seeds, once."""
from __future__ import annotations

import yaml
from testkit import study_of, write_sweep

from optlab.cli.app import main


def test_rerun_trains_the_best_configuration_with_fresh_seeds(tmp_path, capsys):
    path = write_sweep(tmp_path, trials=2, seeds=2)
    assert main(["sweep", str(path)]) == 0
    folder = tmp_path / "outputs" / "sweeps" / "tiny"
    capsys.readouterr()
    assert main(["rerun", str(folder), "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    runs = sorted(p for p in (folder / "rerun").iterdir() if (p / "summary.json").exists())
    assert len(runs) == 3
    seeds = sorted(yaml.safe_load((r / "config.yaml").read_text())["trainer"]["seed"] for r in runs)
    assert seeds == [2, 3, 4]  # the sweep used 0 and 1
    best = max((t for t in study_of(tmp_path).trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    lrs = {yaml.safe_load((r / "config.yaml").read_text())["optimizer"]["lr"] for r in runs}
    assert lrs == {best.params["optimizer.lr"]}
    assert "3/3" in out and "val_acc" in out
    assert main(["rerun", str(folder), "--seeds", "3"]) == 0  # again: nothing new to train
    assert len([p for p in (folder / "rerun").iterdir() if (p / "summary.json").exists()]) == 3
