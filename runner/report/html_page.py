"""One self-contained HTML page: plotly.js, the page's script and style inlined, the data as JSON.

A page is a plain dict (title, facts, notes, sections, runs, groups, curves) that page.js
renders: tables (sortable, filterable), plotly charts, and the links between them (brushing
the parallel coordinates filters the tables and highlights the other charts). Nothing is
fetched when the page opens: every script and style is in the file.
"""
from __future__ import annotations

import datetime
import html
import json
import math
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

CHART_DIGITS = 4  # significant digits of the numbers charts draw (tables keep every digit)
CHART_HEIGHT = 380
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]  # plotly's default sequence, as page.js colours the learning curves


PLOTLY_BUNDLE = "plotly-basic.min.js"  # plotly.js's basic partial bundle (npm plotly.js-basic-dist-min)


@cache
def plotly_js() -> str:
    """plotly.js, the partial bundle with the scatter and bar traces the pages draw: a quarter
    of the whole library's size, so a browser parses it in a quarter of the time."""
    return _asset(PLOTLY_BUNDLE)


def _asset(name: str) -> str:
    return (resources.files("optlab.report") / name).read_text(encoding="utf-8")


def render(page: dict) -> str:
    """The page as one HTML document."""
    title = html.escape(str(page.get("title", "optlab report")))
    data = json.dumps(_plain(page), separators=(",", ":"), allow_nan=False)
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{_asset('page.css')}</style>",
        "</head><body>",
        '<main id="page"></main>',
        f'<script type="application/json" id="page-data">{_script_safe(data)}</script>',
        f"<script>{_script_safe(plotly_js())}</script>",
        f"<script>{_asset('page.js')}</script>",
        "</body></html>", ""])


def _script_safe(text: str) -> str:
    """Text that cannot end its <script> element early."""
    return text.replace("</", "<\\/")


def _plain(value):
    """JSON-ready values: NaN and infinities become null (JSON has neither), numpy scalars
    plain numbers, tuples lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy and pandas scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None if is_missing(value) else str(value)


def is_missing(value) -> bool:
    """None, NaN, pandas' NA or NaT."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def rounded(values, digits: int = CHART_DIGITS) -> list:
    """Numbers for a chart: CHART_DIGITS significant digits, None where missing (a gap)."""
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(float(f"{number:.{digits}g}") if math.isfinite(number) else None)
    return out


def column_type(values: pd.Series) -> str:
    """How page.js shows a column: counts (integers), numbers (4 significant digits) or text."""
    if pd.api.types.is_bool_dtype(values):
        return "text"
    if pd.api.types.is_integer_dtype(values):
        return "count"
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    return "text"


def chart_layout(title: str, xtitle: str, ytitle: str, **extra) -> dict:
    """A chart's plotly layout: its title and axis titles, powers of ten written as such;
    `extra` axes' settings (xaxis={"type": "log"}) are merged in."""
    # no vertical zero line: on a trial or epoch axis it reads as a step of the data at 0
    axes = {"xaxis": {"title": {"text": xtitle}, "exponentformat": "power", "zeroline": False},
            "yaxis": {"title": {"text": ytitle}, "exponentformat": "power"}}
    for axis, settings in extra.items():
        axes[axis] = {**axes.get(axis, {}), **settings}
    return {"title": {"text": title, "font": {"size": 14}}, "height": CHART_HEIGHT,
            "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "hovermode": "closest", **axes}


def generated_facts(extra: dict | None = None) -> dict:
    """What every page says about itself: when and by which optlab it was written."""
    from optlab import __version__

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return {"written": now, "optlab": __version__, **(extra or {})}


def write(path: Path, page: dict) -> Path:
    """The page written whole or not at all."""
    from optlab.runs.files import write_atomic

    write_atomic(Path(path), render(page))
    return Path(path)
