"""The page document: one file, every script inlined, data that cannot break out of its script."""
from __future__ import annotations

import json
import math
import re

from optlab.report import html_page


def test_the_page_inlines_its_scripts_and_style_and_fetches_nothing():
    text = html_page.render({"title": "t", "sections": []})
    assert "plotly.js (basic - minified)" in text and "optlab's report page" in text
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=""", text)  # nothing loaded from anywhere


def test_data_cannot_close_its_script_and_nan_becomes_null():
    text = html_page.render({"title": "</script><b>", "sections": [], "runs": [{"name": "</script>x", "v": math.nan}]})
    data = text.split('id="page-data">', 1)[1].split("</script>", 1)[0]
    page = json.loads(data.replace("<\\/", "</"))
    assert page["runs"] == [{"name": "</script>x", "v": None}]
    assert "<title>&lt;/script&gt;&lt;b&gt;</title>" in text


def test_chart_numbers_keep_four_significant_digits_and_gaps():
    assert html_page.rounded([0.123456, 12345.6, math.nan, None, "x"]) == [0.1235, 12350.0, None, None, None]


def test_the_page_is_written_whole(tmp_path):
    path = html_page.write(tmp_path / "report.html", {"title": "t", "sections": []})
    assert path.read_text().startswith("<!doctype html>") and list(tmp_path.iterdir()) == [path]
