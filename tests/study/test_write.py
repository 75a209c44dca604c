"""The study's written outputs: the README's table."""
import pytest

from optlab.errors import ConfigError
from optlab.study.write import between_markers


def test_the_readme_table_goes_between_its_markers_only():
    doc = "intro\n<!-- studies -->\nold table\n<!-- /studies -->\nafter\n"
    assert between_markers(doc, "| new |") == "intro\n<!-- studies -->\n| new |\n<!-- /studies -->\nafter\n"
    with pytest.raises(ConfigError, match="needs one line"):
        between_markers("no markers", "| new |")


def test_a_study_page_says_what_was_counted():
    from optlab.study.write import what_ran

    assert what_ran({"runs": 20, "sweeps": 0, "trials": 0}) == "20 runs"
    assert what_ran({"runs": 0, "sweeps": 20, "trials": 320}) == "20 sweeps (320 trials)"
    assert what_ran({"runs": 4, "sweeps": 2, "trials": 32}) == "4 runs and 2 sweeps (32 trials)"
    assert what_ran({"runs": 9}) == "9 runs"  # a verdict.json written before sweeps were counted apart


def test_the_counts_of_a_sweep_study(tmp_path):
    from optlab.study.execute import Record
    from optlab.study.run import counted
    from optlab.study.spec import load_study

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "trials.csv").write_text("number,state\n0,COMPLETE\n1,COMPLETE\n2,FAIL\n")
    records = [Record("random", 0, "", sweep, "completed", False), Record("grid", 0, "", sweep, "completed", True)]
    assert counted(load_study("bergstra2012_random_search"), records) == {"runs": 0, "sweeps": 2, "trials": 4}
