"""A study's page and the page of every study: the claim, the criteria with verdict.json's
numbers, table.csv, the figure's data; offline, every chart drawn, in a real browser."""
from __future__ import annotations

import contextlib
import io
import json
import os

import pandas as pd
import pytest
from testkit import config, open_page, table_rows, undrawn_charts, write_run


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """glorot2010_depth --quick (a per-layer figure), run once with --html, then study table --html."""
    from optlab.cli import main

    root, here = tmp_path_factory.mktemp("study"), os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(["study", "run", "glorot2010_depth", "--quick", "--seeds", "2", "--html"]) == 0
            assert main(["study", "table", "--out", "outputs/studies/quick", "--html"]) == 0
    finally:
        os.chdir(here)
    return root / "outputs" / "studies" / "quick" / "glorot2010_depth"


def test_a_studys_page_shows_its_verdict_criteria_and_figure(browser, study_folder):
    verdict = json.loads((study_folder / "verdict.json").read_text())
    opened = open_page(browser, study_folder / "report.html")
    page = opened.page
    assert opened.errors == [] and opened.requests == [] and undrawn_charts(page) == []
    assert page.locator(".badge").first.inner_text() == verdict["verdict"]
    criteria = table_rows(page, "criteria-glorot2010_depth")
    assert [r["outcome"] for r in criteria] == [c["outcome"] for c in verdict["criteria"]]
    for shown, result in zip(criteria, verdict["criteria"]):
        effect = result["effect"]
        assert float(shown["estimate"]) == effect.get("diff", effect.get("mean"))
        assert (float(shown["ci_low"]), float(shown["ci_high"])) == (effect["ci_low"], effect["ci_high"])
    measures = table_rows(page, "measures-glorot2010_depth")
    expected = pd.read_csv(study_folder / "table.csv")
    assert [float(r["mean"]) for r in measures] == list(expected["mean"])
    lines = page.evaluate("document.getElementById('figure-glorot2010_depth').data.length")
    assert lines == len(pd.read_csv(study_folder / "runs.csv"))  # the figure: one line per run
    page.close()


def test_the_page_of_every_study_lists_them_with_their_verdicts(browser, study_folder):
    opened = open_page(browser, study_folder.parent / "report.html")
    assert opened.errors == [] and opened.requests == [] and undrawn_charts(opened.page) == []
    (row,) = table_rows(opened.page, "studies")
    assert row["study"] == "glorot2010_depth" and row["verdict"] == "inconclusive (quick)"
    assert row["ran"] == "6 runs"  # 3 arms x 2 seeds
    opened.page.close()


def test_a_sweep_study_says_how_many_sweeps_and_trials_it_trained_not_0_runs():
    from optlab.report.html_study import claim_section, overview_section

    verdict = {"study": "bergstra", "verdict": "reproduced", "claim": "c", "source": "s", "runs": 0, "sweeps": 20,
               "trials": 320, "reused": 0, "compute_s": 22.0, "machine": "m", "optlab": "v"}
    assert overview_section([(None, None, verdict)])["rows"][0]["cells"]["ran"] == "20 sweeps (320 trials)"
    assert ["trained", "20 sweeps (320 trials) (0 runs reused by the last invocation)"] in claim_section(verdict)["items"]


def test_a_curves_figure_draws_one_line_per_run_of_each_arm(tmp_path):
    from optlab.report.html_study import figure_charts

    for arm, seed in (("a", 0), ("a", 1), ("b", 0)):
        write_run(tmp_path / "runs", f"{arm}-{seed}", config(seed=seed), [0.2, 0.5, 0.6 + seed / 10])
    runs = pd.DataFrame({"arm": ["a", "a", "b"], "seed": [0, 1, 0],
                         "path": [str(tmp_path / "runs" / n) for n in ("a-0", "a-1", "b-0")]})
    (chart,) = figure_charts(tmp_path, "demo", {"kind": "curves", "column": "val_acc"}, runs)
    traces = chart["figure"]["data"]
    assert [t["name"] for t in traces] == ["a", "a", "b"] and [t["showlegend"] for t in traces] == [True, False, True]
    assert traces[1]["y"] == [0.2, 0.5, 0.7] and traces[1]["x"] == [0, 1, 2]
