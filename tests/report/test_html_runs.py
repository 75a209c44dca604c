"""The page of a sweep or a folder of runs: report.csv's numbers, brushing, every chart drawn,
offline, in a real browser (Debian's Chromium through Playwright); and the page's data."""
from __future__ import annotations

import contextlib
import io
import math

import pandas as pd
import pytest
from testkit import make_generated_sweep, open_page, table_rows, undrawn_charts, write_run, config


def make_report(folder, *options: str):
    """optlab report FOLDER --html --no-plots (the PNGs are another test's), in this process."""
    from optlab.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
        assert main(["report", str(folder), "--html", "--no-plots", *options]) == 0
    from pathlib import Path

    return Path(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    """A generated sweep (12 trials x 2 seeds, every 5th trial pruned) and its report folder."""
    sweep = make_generated_sweep(tmp_path_factory.mktemp("html"), trials=12, seeds=2)
    return sweep, make_report(sweep)


def test_a_sweeps_page_opens_offline_with_every_chart_drawn(browser, sweep_report):
    _, folder = sweep_report
    opened = open_page(browser, folder / "report.html")
    page = opened.page
    assert opened.errors == [] and opened.requests == []
    assert undrawn_charts(page) == []
    charts = page.evaluate("[...document.querySelectorAll('div.chart, svg.parcoords')].map((c) => c.id)")
    assert {"parcoords", "vs-0", "vs-1", "curves-val_acc", "curves-train_loss", "best-gen", "importances-gen",
            "intermediate-gen"} <= set(charts)
    assert page.locator("svg.parcoords .lines path").count() == 24  # every run has a value on every axis
    widths = page.evaluate("[...document.querySelectorAll('.section')].map((s) => s.getBoundingClientRect().width)")
    assert len(set(widths)) == 1  # every section as wide as the page's column: none overflows it
    page.close()


def test_the_groups_table_shows_report_csvs_numbers(browser, sweep_report):
    _, folder = sweep_report
    expected = pd.read_csv(folder / "report.csv")
    opened = open_page(browser, folder / "report.html")
    shown = table_rows(opened.page, "groups")
    assert len(shown) == len(expected)
    compared = 0
    for row, (_, csv_row) in zip(shown, expected.iterrows()):
        for column, value in row.items():
            if isinstance(csv_row[column], str) or value in (None, ""):  # text, or empty (NaN in the CSV)
                assert (value or "") == ("" if pd.isna(csv_row[column]) else str(csv_row[column])), column
                continue
            assert float(value) == float(csv_row[column]), (column, value, csv_row[column])
            compared += 1
    assert compared > 12 * 10  # means, intervals, counts: every numeric cell of every group
    first_mean = opened.page.locator("#groups tbody tr").first.locator("[data-col=mean]").inner_text()
    assert first_mean == f"{expected['mean'][0]:.4g}"  # shown as the terminal shows it
    opened.page.close()


def test_brushing_an_lr_range_leaves_exactly_the_runs_inside_it(browser, sweep_report):
    sweep, folder = sweep_report
    runs = pd.read_csv(folder / "runs.csv")
    opened = open_page(browser, folder / "report.html")
    page = opened.page
    target = page.locator("svg.parcoords .brush-target[data-dim='0']")  # optimizer.lr (log), drawn first
    box = target.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 0.3 * box["height"])
    page.mouse.down()
    page.mouse.move(x, box["y"] + 0.5 * box["height"], steps=4)
    page.mouse.move(x, box["y"] + 0.7 * box["height"], steps=4)
    page.mouse.up()
    low, high = (float(target.get_attribute(f"data-{end}")) for end in ("low", "high"))
    inside = runs[[low <= math.log10(lr) <= high for lr in runs["optimizer.lr"]]]
    assert 0 < len(inside) < len(runs)
    assert sorted(r["run"] for r in table_rows(page, "runs")) == sorted(inside["run"])
    groups = {f"optimizer.lr={lr:g}, optimizer.weight_decay={wd:g}"
              for lr, wd in zip(inside["optimizer.lr"], inside["optimizer.weight_decay"])}
    shown_groups = page.evaluate("[...document.querySelectorAll('#groups tbody tr')].length")
    assert shown_groups == len(groups)
    selected = page.evaluate("""() => { const d = document.getElementById('vs-0').data[0];
        return (d.selectedpoints || []).map((j) => d.customdata[j]); }""")
    names = page.evaluate("(ids) => ids.map((i) => JSON.parse(document.getElementById('page-data').textContent)"
                          ".runs[i].name)", selected)
    assert set(names) <= set(inside["run"]) and names  # the scatter highlights only runs inside
    page.evaluate("optlabPage.clear()")
    assert len(table_rows(page, "runs")) == len(runs)
    page.close()


def test_two_brushed_axes_keep_the_runs_inside_both(browser, sweep_report):
    _, folder = sweep_report
    runs = pd.read_csv(folder / "runs.csv")
    opened = open_page(browser, folder / "report.html")
    page = opened.page
    page.evaluate("optlabPage.brushAxis(0, [-3, -1]); optlabPage.brushAxis(2, [0.8, 1])")
    inside = runs[[-3 <= math.log10(lr) <= -1 and 0.8 <= v <= 1
                   for lr, v in zip(runs["optimizer.lr"], runs["final_val_acc"])]]
    assert sorted(r["run"] for r in table_rows(page, "runs")) == sorted(inside["run"])
    assert page.locator("#selection").inner_text() == f"{len(inside)} of {len(runs)} runs inside the brushed ranges"
    page.close()


def test_filtering_and_sorting_a_table(browser, sweep_report):
    _, folder = sweep_report
    opened = open_page(browser, folder / "report.html")
    page = opened.page
    page.locator("#section-runs input.filter").fill("pruned")
    statuses = {r["status"] for r in table_rows(page, "runs")}
    assert statuses == {"pruned"}
    page.locator("#section-runs input.filter").fill("")
    page.locator("#runs th[data-col='optimizer.lr']").click()
    lrs = [float(r["optimizer.lr"]) for r in table_rows(page, "runs")]
    assert lrs == sorted(lrs)
    page.close()


def test_a_folder_of_runs_with_diverged_and_pruned_ones(browser, tmp_path, runs_root):
    folder = make_report(runs_root)
    opened = open_page(browser, folder / "report.html")
    assert opened.errors == [] and opened.requests == [] and undrawn_charts(opened.page) == []
    statuses = sorted(r["status"] for r in table_rows(opened.page, "runs"))
    assert statuses == ["completed"] * 5 + ["diverged", "pruned"]  # listed, never dropped
    opened.page.close()


@pytest.mark.slow
def test_a_thousand_run_sweep_opens_with_every_chart_and_its_page_stays_under_10_mb(browser, tmp_path):
    # How fast it opens is bench/report_page.py's to measure (against a small page, same run).
    sweep = make_generated_sweep(tmp_path, trials=250, seeds=4)  # 1,000 run folders
    page_file = make_report(sweep) / "report.html"
    opened = open_page(browser, page_file)
    assert opened.errors == [] and opened.requests == [] and undrawn_charts(opened.page) == []
    assert len(table_rows(opened.page, "runs")) == 100  # the first 100 of the 1,000 shown until "show all"
    opened.page.close()
    assert page_file.stat().st_size < 10e6


# ---------------------------------------------------------------- the page's data, without a browser

def test_hover_text_names_the_keys_that_vary_and_the_folder_escaped(tmp_path):
    from optlab import report
    from optlab.report import html_runs

    write_run(tmp_path / "runs", "a<b>-0", config("adam", lr=0.01, seed=0), [0.5, 0.6])
    write_run(tmp_path / "runs", "b-0", config("adam", lr=0.1, seed=0), [0.5, 0.7])
    collection = report.load([tmp_path / "runs"])
    metric = report.resolve_metric("val_acc", collection)
    table = report.aggregate(collection, ["optimizer.lr"], metric)
    page = html_runs.runs_page(collection, table, ["optimizer.lr"], metric, ("completed",), ["runs"])
    hover = next(r["hover"] for r in page["runs"] if r["name"] == "a<b>-0")
    assert "<b>a&lt;b&gt;-0</b>" in hover and "optimizer.lr = 0.01" in hover and str(tmp_path) in hover


def test_curve_legends_show_3_significant_digits_and_hovers_the_whole_value(browser, tmp_path):
    write_run(tmp_path / "runs", "a-0", config("adam", lr=0.123731, seed=0), [0.5, 0.6])
    write_run(tmp_path / "runs", "b-0", config("adam", lr=0.0031622776, seed=0), [0.5, 0.7])
    opened = open_page(browser, make_report(tmp_path / "runs", "--by", "optimizer.lr") / "report.html")
    traces = opened.page.evaluate("document.getElementById('curves-val_acc').data.filter((t) => t.name)"
                                  ".map((t) => [t.name, t.text[0]])")
    assert sorted(name for name, _ in traces) == ["optimizer.lr=0.00316 (n=1)", "optimizer.lr=0.124 (n=1)"]
    assert any("optimizer.lr=0.123731" in hover for _, hover in traces)
    opened.page.close()


def test_long_curves_are_thinned_keeping_the_last_epoch():
    from optlab.report.html_runs import MAX_CURVE_POINTS, _thin

    thinned = _thin(pd.Series(range(1, 1001)))
    assert len(thinned) == MAX_CURVE_POINTS and thinned[0] == 1 and thinned[-1] == 1000
    assert _thin(pd.Series([0.123456789, 2.0]), chart_number=True) == [0.1235, 2.0]


def test_a_log_sampled_key_gets_a_log10_axis_and_categories_get_codes():
    from optlab.report.html_runs import _dimension

    runs = pd.DataFrame({"optimizer.lr": [1e-4, 1e-2, 1e-1], "optimizer": ["sgd", "adam", "sgd"]})
    lr = _dimension(runs, "optimizer.lr", True)
    assert lr["label"] == "optimizer.lr (log)" and lr["values"] == pytest.approx([-4, -2, -1])
    assert lr["range"] == [-4, -1] and lr["ticktext"][0] == "1e-4"
    choice = _dimension(runs, "optimizer", None)
    assert choice["values"] == [1, 0, 1] and choice["ticktext"] == ["adam", "sgd"]


def test_few_trials_warn_that_importances_rank_loosely(sweep_report):
    from optlab import report
    from optlab.report import html_runs

    sweep, _ = sweep_report
    (section,) = html_runs._importance_sections(report.load_sweep(sweep), "val_acc")
    assert f"fewer than {html_runs.FEW_TRIALS}" in section["caption"]
