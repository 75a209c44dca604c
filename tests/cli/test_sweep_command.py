"""`optlab sweep`'s live view: it shows the rows and writes nothing."""
from __future__ import annotations

from testkit import tiny_spec


def test_the_live_view_writes_nothing(tmp_path, monkeypatch):
    from optlab.cli.sweep import SweepView
    from optlab.runs import files
    from optlab.sweep import outputs

    def refuse(*args, **kwargs):
        raise AssertionError("the view wrote a file")

    monkeypatch.setattr(outputs, "write_outputs", refuse)
    monkeypatch.setattr(files, "write_atomic", refuse)
    monkeypatch.chdir(tmp_path)
    row = {"number": 0, "state": "COMPLETE", "status": "completed", "value": 0.9, "value_seed0": 0.9,
           "duration_s": 1.0, "param.optimizer.lr": "0.1", "run_dirs": "", "error": ""}
    with SweepView(tiny_spec(tmp_path, trials=2)) as view:
        view.show([row])
    assert list(tmp_path.iterdir()) == []
