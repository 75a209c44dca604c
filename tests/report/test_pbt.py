"""A PBT sweep's report (runner/report/pbt.py): the members per epoch with the best lineage,
the table of final members, the PNG and the page's sections."""
from __future__ import annotations

import math

import pytest
from testkit import TINY_BASE, sweep_folder, write_sweep

from optlab import report
from optlab.cli.app import main
from optlab.report import html_runs
from optlab.report.pbt import lineage_values, pbt_figure, pbt_sections, pbt_view
from optlab.sweep.pbt_state import read_state


@pytest.fixture
def pbt_sweep(tmp_path):
    base = [*(o for o in TINY_BASE if not o.startswith("trainer.epochs=")), "trainer.epochs=5",
            f"trainer.out_dir={tmp_path / 'outputs'}"]
    path = write_sweep(tmp_path, scheduler="pbt", population=4, trials=4, seed=3, base=base,
                       pbt={"interval": 2, "perturb": [0.8, 1.25]})
    assert main(["sweep", str(path)]) == 0
    return sweep_folder(tmp_path)


def test_the_best_lineage_is_the_donors_curve_before_each_exploit_and_the_members_after(pbt_sweep):
    collection = report.load([pbt_sweep])
    view = pbt_view(collection.sweeps[0])
    state = read_state(pbt_sweep)
    assert view.best == int(view.members["member"].iloc[0])  # the table is ranked, best first
    assert len(view.owners) == 5 and view.owners[-1] == view.best
    for epoch, owner in enumerate(view.owners):
        assert lineage_values(view, "val_acc")[epoch] == float(view.rows[owner]["val_acc"].iloc[epoch])
    taken = [e for e in state.events if e["member"] == view.best]
    assert int(view.members.set_index("member").loc[view.best, "exploits"]) == len(taken)
    assert math.isclose(view.members["value"].max(), view.members["value"].iloc[0])


def test_the_figure_has_a_panel_for_the_metric_and_each_searched_key_and_the_page_their_charts(pbt_sweep):
    view = pbt_view(report.load([pbt_sweep]).sweeps[0])
    fig = pbt_figure(view)
    axes = fig.get_axes()
    assert [ax.get_ylabel() for ax in axes] == ["val_acc (validation)", "optimizer.lr"]
    assert axes[1].get_yscale() == "log"  # the sweep sampled the lr on a log scale
    assert sum(line.get_linewidth() > 2 for line in axes[0].get_lines()) == 1  # one bold lineage
    sections = pbt_sections(view)
    assert [s["kind"] for s in sections] == ["chart", "chart", "table"]
    assert len(sections[0]["figure"]["data"]) == 5 and len(sections[2]["rows"]) == 4
    collection = report.load([pbt_sweep])
    metric = report.resolve_metric("val_acc", collection, "auto", "best")
    page = html_runs.runs_page(collection, report.aggregate(collection, [], metric, None, ("completed",)), [],
                               metric, ("completed",), [str(pbt_sweep)])
    assert {"pbt-tiny-val_acc", "pbt-tiny-optimizer.lr", "pbt-tiny-members"} <= {s.get("id") for s in page["sections"]}


def test_optlab_report_on_a_pbt_sweep_writes_its_figure_and_the_table_of_final_members(pbt_sweep, capsys):
    assert main(["report", str(pbt_sweep), "--out", str(pbt_sweep / "rep")]) == 0
    out = capsys.readouterr()
    assert "final members" in out.out and "holds its initial values" in out.err
    assert (pbt_sweep / "rep" / "sweep_tiny_pbt.png").is_file()
    assert (pbt_sweep / "rep" / "sweep_tiny_pbt_members.csv").read_text().startswith("member,trial,run,value")


def test_a_sweep_without_pbt_has_no_pbt_view(tmp_path):
    assert main(["sweep", str(write_sweep(tmp_path))]) == 0
    assert pbt_view(report.load([sweep_folder(tmp_path)]).sweeps[0]) is None
