"""`optlab sweep`: its live view shows the rows and writes nothing; --html ends with the report page."""
from __future__ import annotations

from testkit import sweep_folder, tiny_spec, write_sweep


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


def test_html_ends_the_sweep_with_its_report_page_and_the_folder_last(optlab, tmp_path):
    done = optlab("sweep", str(write_sweep(tmp_path)), "--html")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(sweep_folder(tmp_path))
    page = sweep_folder(tmp_path) / "report-val_acc-final" / "report.html"
    assert page.read_text().startswith("<!doctype html>")
    assert "report-val_acc-final" in done.stderr  # the report's own output goes to stderr
def test_a_trial_line_without_a_best_so_far_has_no_empty_brackets(capsys):
    from optlab.cli.sweep import SweepView
    from optlab.sweep.spec import SweepSpec, parse_space

    spec = SweepSpec("s", space=parse_space({"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5}}))
    row = {"number": 0, "status": "interrupted", "value": None, "param.optimizer.lr": "0.1",
           "error": "interrupted by a signal; queued again", "duration_s": None}
    SweepView(spec).log_new([row])
    line = capsys.readouterr().err.strip()
    assert line == "trial 0 interrupted optimizer.lr=0.1 (interrupted by a signal; queued again)"
    SweepView(spec).log_new([row, {**row, "number": 1, "status": "completed", "value": 0.9, "error": ""}])
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[1] == "trial 1 completed val_acc (validation, best epoch) 0.9000 optimizer.lr=0.1  " \
                       "[best val_acc (validation, best epoch) 0.9000 (trial 1)]"
