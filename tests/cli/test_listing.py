"""`optlab list` piped: not cut to the terminal, and as CSV."""
from __future__ import annotations

from optlab.cli.app import main


def test_list_piped_is_not_cut_and_speaks_csv(tmp_path, capsys):
    assert main(["list", "optimizer"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and "adagrad" in out and "initial_accumulator_value=0.0" in out
    assert main(["list", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "group,option,description" and any(line.startswith("optimizer,adagrad,") for line in lines)
