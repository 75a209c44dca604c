"""trials.csv reads back what was written, for refine, rerun and report; a malformed one is a data error."""
from __future__ import annotations

import optuna
import pytest

from optlab.errors import DataError
from optlab.sweep.outputs import assignment_of_row, best_rows, read_trial_rows
from optlab.sweep.space import suggest
from optlab.sweep.spec import spec_from_dict


def test_trials_csv_reads_back_what_was_written_for_refine_rerun_and_report(tmp_path):
    from optlab import report
    from optlab.sweep.outputs import (
        read_trials_table,
        trial_of_run_folder,
        write_outputs,
    )

    spec = spec_from_dict({"study": "s", "seeds": 2, "space": {
        "optimizer": ["momentum", "adam"],
        "optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "momentum"}},
        "model.depth": {"type": "int", "low": 1, "high": 4}}})
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3))
    for number in range(4):
        trial = study.ask()
        suggest(trial, spec.space)
        trial.set_user_attr("status", "completed")
        trial.set_user_attr("seed_values", [0.5 + number / 10, 0.6])
        trial.set_user_attr("run_dirs", [f"runs/t{number}-seed0", f"runs/t{number}-seed1"])
        study.tell(trial, 0.55 + number / 20)
    write_outputs(study, spec, tmp_path)

    rows = read_trial_rows(tmp_path)
    assert [assignment_of_row(spec.space, r) for r in rows] == [t.params for t in study.trials]
    assert [int(r["number"]) for r in best_rows(rows, spec.direction, 2)] == [3, 2]
    table = report.load_sweep(tmp_path).trials
    assert table.equals(read_trials_table(tmp_path)) and table["value"].tolist() == [t.value for t in study.trials]
    assert trial_of_run_folder(table) == {f"t{n}-seed{k}": float(n) for n in range(4) for k in range(2)}


def test_a_malformed_trials_csv_is_a_data_error_for_report(tmp_path):
    from optlab import report

    (tmp_path / "trials.csv").write_bytes(b"number,value\n\xff\xfe\x00broken")
    with pytest.raises(DataError, match="trials.csv is malformed"):
        report.load_sweep(tmp_path)
