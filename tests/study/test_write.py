"""The study's written outputs: the README's table."""
import pytest

from optlab.errors import ConfigError
from optlab.study.write import between_markers


def test_the_readme_table_goes_between_its_markers_only():
    doc = "intro\n<!-- studies -->\nold table\n<!-- /studies -->\nafter\n"
    assert between_markers(doc, "| new |") == "intro\n<!-- studies -->\n| new |\n<!-- /studies -->\nafter\n"
    with pytest.raises(ConfigError, match="needs one line"):
        between_markers("no markers", "| new |")
