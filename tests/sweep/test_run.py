"""A sweep's run options, and trials.csv kept current by the sweep as trials finish."""
from __future__ import annotations

import pytest
from testkit import read_rows, sweep_folder, write_sweep

from optlab.cli.app import main


def test_trials_csv_is_kept_current_by_the_sweep_not_by_its_view(tmp_path, monkeypatch):
    """The view is handed the rows after they are on disk; it is a stand-in that writes nothing."""
    import optlab.cli.sweep as cli_sweep

    shown = []

    class View:
        def __init__(self, spec):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def show(self, rows):
            shown.append(([(r["number"], r["status"]) for r in rows],
                          [(int(r["number"]), r["status"]) for r in read_rows(sweep_folder(tmp_path))]))

    monkeypatch.setattr(cli_sweep, "SweepView", View)
    assert main(["sweep", str(write_sweep(tmp_path, trials=2))]) == 0
    assert len(shown) == 3  # at the start and after each trial
    assert all(handed == on_disk for handed, on_disk in shown)
    assert shown[-1][0] == [(0, "completed"), (1, "completed")]


@pytest.mark.parametrize("flags, expected", [(["--extend", "0"], "--extend 0: must be >= 1"),
                                             (["--heartbeat", "-1"], "--heartbeat -1: must be >= 1 second")])
def test_bad_run_options_exit_2_before_anything_is_created(tmp_path, capsys, flags, expected):
    assert main(["sweep", str(write_sweep(tmp_path)), *flags]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()
