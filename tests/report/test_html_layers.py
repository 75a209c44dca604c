"""The page of diagnostics runs: each per-layer statistic against depth, a menu of records."""
from __future__ import annotations

from testkit import open_page, undrawn_charts

from optlab.training.api import train


def test_the_layers_page_draws_every_statistic_and_switches_records(browser, compose_cfg, optlab, tmp_path):
    for init in ("init=normal", "init=xavier_uniform"):
        train(compose_cfg("model=mlp", "model.depth=4", "model.width=16", "activation=tanh", init,
                          "trainer.diagnostics=true", "trainer.epochs=2"))
    done = optlab("report", "--layers", "outputs/runs", "--out", "layers_report", "--html")
    assert done.returncode == 0, done.stderr
    opened = open_page(browser, tmp_path / "layers_report" / "report.html")
    page = opened.page
    assert opened.errors == [] and opened.requests == [] and undrawn_charts(page) == []
    visible = "document.getElementById('layers-act_std').data.filter((t) => t.visible !== false).length"
    assert page.evaluate(visible) == 2  # one line per run, at initialization
    title = "document.getElementById('layers-act_std').layout.title.text"
    assert page.evaluate(title) == "activation std per layer at initialization"
    page.locator("#layers-act_std .updatemenu-header").click()
    page.locator("#layers-act_std .updatemenu-dropdown-button", has_text="after epoch 1").click()
    page.wait_for_function(f"{title} === 'activation std per layer after epoch 1'")
    assert page.evaluate(visible) == 2
    page.close()
