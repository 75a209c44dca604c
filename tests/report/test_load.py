"""Reading run folders into one table; unreadable and half-written ones skipped with the reason."""
from __future__ import annotations

import yaml
from testkit import METRIC_HEADER, config, write_run

from optlab import report


def test_runs_table_has_config_keys_group_choices_and_summary(runs_root):
    runs = report.load([runs_root]).runs.set_index("run")
    assert runs.loc["adam-0", "optimizer"] == "adam" and runs.loc["adam-0", "optimizer.lr"] == 0.001
    assert runs.loc["adam-0", "augment"] == "none" and runs.loc["adam-0", "optimizer.betas"] == "[0.9, 0.999]"
    assert runs.loc["sgd-2", "status"] == "diverged" and runs.loc["sgd-3", "seed"] == 3
    assert runs.loc["adam-2", "best_val_acc"] == 0.97 and runs.loc["adam-2", "wall_time_s"] == 1.5


def test_malformed_and_half_written_folders_are_skipped_with_reasons(runs_root):
    half = runs_root / "half"
    half.mkdir()
    (half / "config.yaml").write_text(yaml.safe_dump(config()))
    bad_csv = write_run(runs_root, "bad-csv", config(seed=7), [0.5])
    (bad_csv / "metrics.csv").write_text(METRIC_HEADER + "0,1,2\n")
    bad_number = write_run(runs_root, "bad-number", config(seed=8), [0.5])
    (bad_number / "metrics.csv").write_text(METRIC_HEADER + "0,1,0.1,64,x,0.5,0.5,0.5,1,1,1\n")
    bad_json = write_run(runs_root, "bad-json", config(seed=9), [0.5])
    (bad_json / "summary.json").write_text('{"status": "compl')
    foreign = runs_root / "foreign"
    foreign.mkdir()
    (foreign / "metrics.csv").write_text("a,b\n1,2\n")
    torn = write_run(runs_root, "torn", config(seed=10), [0.5, 0.6])
    with open(torn / "metrics.csv", "a") as f:
        f.write("2,30,0.001,64,0.3")  # the run was writing this line
    collection = report.load([runs_root, runs_root / "missing"])
    reasons = {s.path.name: s.reason for s in collection.skipped}
    assert "missing summary.json" in reasons["half"]
    assert "line 2 has 3 fields, expected 11" in reasons["bad-csv"]
    assert "'x' is not a number" in reasons["bad-number"]
    assert "not valid JSON" in reasons["bad-json"]
    assert "missing config.yaml" in reasons["foreign"]
    assert reasons["missing"] == "no such folder"
    assert len(collection.runs) == 8  # the 7 good runs and the torn one
    assert any("torn" in note for note in collection.notes)
    assert collection.curves[collection.curves["run_dir"] == str(torn)]["epoch"].tolist() == [0, 1]
