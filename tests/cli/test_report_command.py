"""`optlab report` end to end: on hand-written folders, on two real tiny training runs, and --layers."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from testkit import config, make_sweep, write_run

from optlab.cli.app import main

PNG = b"\x89PNG\r\n\x1a\n"


def report_cli(capsys, *args):
    code = main(["report", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG, path


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "runs"
    for seed, curve in enumerate([[0.5, 0.9], [0.6, 0.95]]):
        write_run(root, f"adam-{seed}", config("adam", seed=seed), curve)
    for seed, curve in enumerate([[0.3, 0.7], [0.4, 0.8]]):
        write_run(root, f"sgd-{seed}", config("sgd", 0.1, seed=seed), curve)
    write_run(root, "sgd-div", config("sgd", 0.1, seed=9), [0.2, math.nan], status="diverged")
    (root / "half").mkdir()
    (root / "half" / "config.yaml").write_text("trainer: {seed: 1}\n")
    return root


def test_report_writes_tables_and_plots_and_prints_the_folder_last(capsys, root):
    code, out, err = report_cli(capsys, root, "--target", "0.9", "--at", "best")
    assert code == 0
    folder = root / "report-val_acc-best-target_0.9"  # named after the options
    assert out.strip().splitlines()[-1] == str(folder)
    assert "skipped" in err and "half" in err and "missing summary.json" in err
    table = pd.read_csv(folder / "report.csv").set_index("group")
    assert list(table.index) == ["optimizer=adam", "optimizer=sgd"]
    assert table.loc["optimizer=adam", "mean"] == pytest.approx(0.925)
    sgd = table.loc["optimizer=sgd"]
    assert (sgd["diverged"], sgd["n"], sgd["runs"]) == (1, 2, 3)
    assert (table.loc["optimizer=adam", "target_reached"], table.loc["optimizer=sgd", "target_missed"]) == (2, 3)
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 5 and {"optimizer", "optimizer.lr", "status", "best_val_acc", "seed"} <= set(runs.columns)
    for name in ("curves_val_acc.png", "curves_train_loss.png"):
        assert_png(folder / name)
    assert "optimizer=adam" in out or "adam" in out  # the rich table


@pytest.mark.parametrize("fmt", ["json", "md", "csv"])
def test_formats_print_the_table_and_keep_the_folder_last(capsys, root, tmp_path, fmt):
    code, out, _ = report_cli(capsys, root, "--by", "optimizer", "--format", fmt, "--no-plots", "--out", tmp_path / "r")
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1] == str(tmp_path / "r")
    body = "\n".join(lines[:-1])
    if fmt == "json":
        assert [g["group"] for g in json.loads(body)] == ["optimizer=adam", "optimizer=sgd"]
        assert (tmp_path / "r" / "report.json").is_file()
    elif fmt == "md":
        assert lines[0].startswith("| rank | group | optimizer |") and lines[1].startswith("|---|")
    else:
        assert lines[0].startswith("rank,group,optimizer,metric,at,n,runs,duplicates")
    assert not list((tmp_path / "r").glob("*.png"))


def test_numeric_key_plot_and_compare(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for i, lr in enumerate([1e-4, 1e-3, 1e-2, 1e-1]):
        write_run(a, f"r{i}", config("adam", lr=lr, seed=i), [0.5 + 0.1 * i])
        write_run(b, f"r{i}", config("adam", lr=lr, seed=i), [0.4 + 0.1 * i])
    code, out, _ = report_cli(capsys, a, b, "--compare", "--out", tmp_path / "cmp")
    assert code == 0 and out.strip().splitlines()[-1] == str(tmp_path / "cmp")
    row = pd.read_csv(tmp_path / "cmp" / "compare.csv").iloc[0]
    assert row["group"] == "all" and (row["A_n"], row["B_n"]) == (4, 4)
    assert row["diff"] == pytest.approx(0.1) and row["diff_ci_low"] < 0.1 < row["diff_ci_high"]
    assert_png(tmp_path / "cmp" / "val_acc_vs_optimizer.lr.png")
    assert "A - B" in out


def test_sweep_report_draws_best_so_far_and_importances(capsys, tmp_path):
    folder = make_sweep(tmp_path)
    code, out, err = report_cli(capsys, folder, "--by", "optimizer")
    assert code == 0, err
    for name in ("sweep_demo_best_so_far.png", "sweep_demo_importances.png", "curves_val_acc.png"):
        assert_png(folder / "report-by_optimizer-val_acc-best" / name)  # the sweep's own `at` (best)


@pytest.mark.parametrize("args, code, fragment", [
    (["--by", "optimizer.lrr"], 2, "optimizer.lrr"),
    (["--metric", "accuracy"], 2, "--metric accuracy"),
    (["--compare"], 2, "exactly two PATHs"),
    (["--stats-over", "completed,done"], 2, "choose from: completed"),
])
def test_bad_usage_exits_2_with_one_line(capsys, root, args, code, fragment):
    got, _, err = report_cli(capsys, root, "--no-plots", *args)
    last = err.strip().splitlines()[-1]
    assert got == code and last.startswith("optlab: error:") and fragment in last and "Traceback" not in err


def test_nothing_readable_exits_3(capsys, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "summary.json").write_text("{}")
    code, _, err = report_cli(capsys, tmp_path)
    assert code == 3 and "no readable run folders" in err


@pytest.mark.slow
def test_real_runs_through_the_command(optlab, compose_cfg, tmp_path):
    from optlab.training.api import train

    for optimizer in ("adam", "sgd"):  # real training, in this process (torch is already loaded)
        assert train(compose_cfg(f"optimizer={optimizer}", "model.width=16")).status == "completed"
    result = optlab("report", "outputs", "--by", "optimizer", "--target", "0.3", timeout=120)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / result.stdout.strip().splitlines()[-1]
    assert folder == tmp_path / "outputs" / "report-by_optimizer-val_acc-final-target_0.3"
    table = pd.read_csv(folder / "report.csv")
    assert sorted(table["optimizer"]) == ["adam", "sgd"] and (table["completed"] == 1).all()
    assert table["mean"].between(0, 1).all() and table["rank"].tolist() == [1, 2]
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 2 and (runs["epochs_done"] == 2).all()
    for name in ("curves_val_acc.png", "curves_train_loss.png"):
        assert_png(folder / name)
    # the same figures, inspected as objects
    from optlab import report
    from optlab.report import plots

    collection = report.load([tmp_path / "outputs"])
    fig = plots.learning_curves(report.group_curves(collection, ["optimizer"], "val_acc"), "val_acc")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "val_acc")
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["optimizer=adam (n=1)", "optimizer=sgd (n=1)"]


# ---------------------------------------------------------------- honest statistics, named folders

def test_duplicates_are_counted_once_with_one_warning_line(capsys, tmp_path):
    for copy in range(4):  # the same config and seed four times, as `optlab train` run four times makes
        cfg = config("adam", seed=0)
        cfg["trainer"]["name"] = f"again-{copy}"
        write_run(tmp_path / "runs", f"adam-0-{copy}", cfg, [0.5, 0.9])
    write_run(tmp_path / "runs", "sgd-0", config("sgd", 0.1, seed=0), [0.4, 0.8])
    write_run(tmp_path / "runs", "sgd-1", config("sgd", 0.1, seed=1), [0.4, 0.7])
    code, out, err = report_cli(capsys, tmp_path / "runs", "--no-plots", "--out", tmp_path / "r")
    assert code == 0
    table = pd.read_csv(tmp_path / "r" / "report.csv").set_index("group")
    adam = table.loc["optimizer=adam"]
    assert (adam["n"], adam["runs"], adam["duplicates"]) == (1, 4, 3) and pd.isna(adam["ci_low"])
    assert (table.loc["optimizer=sgd", "n"], table.loc["optimizer=sgd", "duplicates"]) == (2, 0)
    warnings = [line for line in err.splitlines() if "duplicate" in line]
    assert warnings == ["warning: merged 3 duplicate run folder(s) (same config and seed as another; counted once, "
                        "values averaged): optimizer=adam: 4 folders, n=1"]
    assert "1/4" in out  # n / run folders


def test_pooled_keys_are_named_in_the_caption_and_report_csv(capsys, root, tmp_path):
    cfg = config("adam", seed=3)
    cfg["trainer"]["epochs"] = 10
    write_run(root, "adam-long", cfg, [0.5, 0.7, 0.9])
    code, out, _ = report_cli(capsys, root, "--by", "optimizer", "--no-plots", "--out", tmp_path / "r")
    assert code == 0
    table = pd.read_csv(tmp_path / "r" / "report.csv", keep_default_na=False).set_index("group")
    assert table.loc["optimizer=adam", "varies"] == "trainer.epochs" and table.loc["optimizer=sgd", "varies"] == ""
    lines = [line.strip() for line in out.splitlines()]
    assert "pooled runs that also differ in:" in lines and "optimizer=adam: trainer.epochs" in lines
    assert not any(line.startswith("optimizer=sgd:") for line in lines)


def test_table_and_report_csv_say_which_epoch(capsys, root, tmp_path):
    code, out, _ = report_cli(capsys, root, "--no-plots", "--out", tmp_path / "final")
    table = pd.read_csv(tmp_path / "final" / "report.csv").set_index("group")
    assert code == 0 and "val_acc (validation, final epoch) by optimizer" in out
    assert (table.loc["optimizer=adam", "metric"], table.loc["optimizer=adam", "at"]) == ("val_acc", "final")
    assert table.loc["optimizer=adam", "mean"] == pytest.approx(0.925)  # last epochs 0.9, 0.95
    code, out, _ = report_cli(capsys, root, "--no-plots", "--at", "best", "--metric", "train_loss",
                              "--out", tmp_path / "best")
    assert code == 0 and "train_loss (training, best epoch) by optimizer (lower is better" in out
    assert set(pd.read_csv(tmp_path / "best" / "report.csv")["at"]) == {"best"}


def test_at_contradicting_a_summary_number_exits_2(capsys, root):
    code, _, err = report_cli(capsys, root, "--no-plots", "--metric", "best_val_acc", "--at", "final")
    assert code == 2 and "use --metric val_acc --at final" in err.strip().splitlines()[-1]


def test_test_split_column_beside_the_validation_one(capsys, root, tmp_path):
    for name, test_acc in {"adam-0": 0.86, "adam-1": 0.90, "sgd-0": 0.70, "sgd-1": 0.74}.items():
        path = root / name / "summary.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "test_acc": test_acc, "best_epoch": 1}))
    code, out, _ = report_cli(capsys, root, "--no-plots", "--out", tmp_path / "r")
    table = pd.read_csv(tmp_path / "r" / "report.csv").set_index("group")
    assert code == 0 and table.loc["optimizer=adam", "test_mean"] == pytest.approx(0.88)
    assert table.loc["optimizer=sgd", "test_n"] == 2 and table.loc["optimizer=sgd", "test_ci_low"] < 0.72
    header = next(line for line in out.splitlines() if "rank" in line)
    assert "test_acc" in header and "test_acc 95% CI" in header
    assert "test_acc: the test split, measured once with each run's best-validation-epoch weights" in out


def test_reports_with_other_options_get_their_own_folders(capsys, root):
    first = report_cli(capsys, root, "--by", "optimizer", "--no-plots")
    second = report_cli(capsys, root, "--by", "optimizer", "--at", "best", "--no-plots")
    folders = [result[1].strip().splitlines()[-1] for result in (first, second)]
    assert folders == [str(root / "report-by_optimizer-val_acc-final"), str(root / "report-by_optimizer-val_acc-best")]
    assert {pd.read_csv(f"{folder}/report.csv")["at"].iloc[0] for folder in folders} == {"final", "best"}
    assert report_cli(capsys, root, "--by", "optimizer", "--no-plots")[0] == 0  # the same options refresh their own


def test_an_explicit_out_holding_another_report_needs_force(capsys, root, tmp_path):
    out = tmp_path / "r"
    assert report_cli(capsys, root, "--out", out)[0] == 0
    assert (out / "curves_val_acc.png").exists()
    before = (out / "report.csv").read_text()
    code, _, err = report_cli(capsys, root, "--out", out, "--at", "best", "--no-plots")
    assert code == 2 and (out / "report.csv").read_text() == before
    assert f"{out} holds a report made with other options (at 'final' -> 'best')" in err
    (out / "notes.txt").write_text("mine")
    code, _, _ = report_cli(capsys, root, "--out", out, "--at", "best", "--no-plots", "--force")
    assert code == 0 and pd.read_csv(out / "report.csv")["at"].iloc[0] == "best"
    # the first report's plots went with it; files the report did not write stay
    assert not (out / "curves_val_acc.png").exists() and (out / "notes.txt").read_text() == "mine"


def test_a_wide_table_is_not_cut_when_piped(capsys, tmp_path):
    long_names = [f"a-rather-long-dataset-name-number-{i}-that-makes-the-table-wide" for i in range(2)]
    for i, name in enumerate(long_names):
        for seed in range(2):
            cfg = config("adam", seed=seed)
            cfg["data"]["name"] = name
            write_run(tmp_path / "runs", f"r{i}-{seed}", cfg, [0.5, 0.8 + 0.01 * seed])
    code, out, _ = report_cli(capsys, tmp_path / "runs", "--target", "0.6", "--no-plots", "--out", tmp_path / "r")
    rows = [line for line in out.splitlines() if "a-rather-long" in line]
    assert code == 0 and len(rows) == 2 and all(name in out for name in long_names)
    assert max(len(line) for line in out.splitlines()) > 160


class Captured:
    """A report folder that keeps the figures instead of writing them."""

    def __init__(self):
        self.figures = {}

    def save(self, fig, name):
        self.figures[name] = fig


def test_plots_of_a_sweep_use_its_log_scale_and_per_branch_importances(tmp_path):
    from optlab import report
    from optlab.cli import report as report_cli

    folder = make_sweep(tmp_path, trials=8)
    for i, lr in enumerate([1e-3, 3e-3, 1e-2, 3e-2]):  # 1.5 decades: linear by the decade rule
        write_run(folder / "runs", f"extra{i}", config(lr=lr, seed=1), [0.5, 0.6 + 0.01 * i])
    meta = json.loads((folder / "sweep.json").read_text())
    meta["space"] = {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
                     "model.width": {"type": "int", "low": 8, "high": 64}}
    (folder / "sweep.json").write_text(json.dumps(meta))
    collection = report.load([tmp_path / "sweeps" / "demo" / "runs" / f"extra{i}" for i in range(4)])
    collection.sweeps = [report.load_sweep(folder)]
    metric = report.resolve_metric("val_acc", collection)
    table = report.aggregate(collection, [], metric)
    captured = Captured()
    notes = report_cli.write_plots(collection, table, [], metric, ("completed",), captured)
    assert notes == []
    assert captured.figures["val_acc_vs_optimizer.lr.png"].axes[0].get_xscale() == "log"
    importance = captured.figures["sweep_demo_importances.png"].axes[0]
    assert importance.get_title() == "demo: parameter importances for val_acc (validation, best epoch)"


def test_compare_keeps_the_same_config_and_seed_of_both_sides_apart(tmp_path):
    from optlab import report
    from optlab.cli import report as report_cli

    a, b = tmp_path / "a", tmp_path / "b"
    for i, lr in enumerate([1e-4, 1e-3, 1e-2, 1e-1]):  # the same configs and seeds on both sides, other results
        write_run(a, f"r{i}", config("adam", lr=lr, seed=i), [0.5 + 0.1 * i])
        write_run(b, f"r{i}", config("adam", lr=lr, seed=i), [0.4 + 0.1 * i])
    collection = report.load([a, b])
    metric = report.resolve_metric("val_acc", collection)
    table = report.aggregate(collection, ["source"], metric)
    assert table["n"].tolist() == [4, 4] and table["duplicates"].tolist() == [0, 0]
    captured = Captured()
    report_cli.write_plots(collection, table, ["source"], metric, ("completed",), captured)
    legend = captured.figures["val_acc_vs_optimizer.lr.png"].axes[0].get_legend()
    assert sorted(t.get_text() for t in legend.get_texts()) == [f"source={a} (n=4)", f"source={b} (n=4)"]


def test_report_layers_without_diagnostics_exits_3(optlab):
    result = optlab("report", "--layers", ".")
    assert result.returncode == 3 and "trainer.diagnostics=true" in result.stderr


def test_html_adds_the_page_beside_report_csv_and_records_it(capsys, root):
    code, out, _ = report_cli(capsys, root, "--html", "--no-plots")
    folder = Path(out.strip().splitlines()[-1])
    assert code == 0 and (folder / "report.html").read_text().startswith("<!doctype html>")
    assert "report.html" in json.loads((folder / "report_options.json").read_text())["files"]
    assert (folder / "report.csv").is_file() and (folder / "runs.csv").is_file()  # --html adds, never replaces


def test_compare_with_html_puts_compare_csvs_numbers_on_the_page(capsys, tmp_path):
    for side, lr in (("a", 0.01), ("b", 0.1)):
        for seed in range(2):
            write_run(tmp_path / side, f"r{seed}", config("adam", lr, seed=seed), [0.5, 0.6 + lr + seed / 100])
    code, out, _ = report_cli(capsys, tmp_path / "a", tmp_path / "b", "--compare", "--html", "--no-plots")
    folder = Path(out.strip().splitlines()[-1])
    text = (folder / "report.html").read_text()
    page = json.loads(text.split('id="page-data">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))
    (section,) = [s for s in page["sections"] if s["id"] == "compare"]
    expected = pd.read_csv(folder / "compare.csv")
    assert code == 0 and [r["cells"]["diff"] for r in section["rows"]] == list(expected["diff"])
def test_runs_with_and_without_clipping_are_two_groups_not_four_seeds(capsys, tmp_path):
    """Two seeds without clipping and two with regularize.clip_norm=0.01: `optlab report`
    shows two groups of n 2/2, and pooling them (--by optimizer) names clip_norm."""
    for seed, (free, clipped) in enumerate([(0.89, 0.06), (0.90, 0.11)]):
        for name, clip, acc in (("free", None, free), ("clip", 0.01, clipped)):
            cfg = config("adam", seed=seed)
            cfg["regularize"] = {"clip_norm": clip}
            write_run(tmp_path / "runs", f"{name}-{seed}", cfg, [acc])
    code, out, _ = report_cli(capsys, tmp_path / "runs", "--no-plots", "--out", tmp_path / "r")
    rows = [line for line in out.splitlines() if "2/2" in line]
    assert code == 0 and len(rows) == 2 and "null" in rows[0] and "0.01" in rows[1]
    assert "n = distinct seeds used" in out
    code, out, _ = report_cli(capsys, tmp_path / "runs", "--by", "optimizer", "--no-plots", "--out", tmp_path / "p")
    assert code == 0 and "4/4" in out and "every group pools runs that also differ in: regularize.clip_norm" in out
    assert "n = distinct configuration and seed pairs used" in " ".join(out.split())
    table = pd.read_csv(tmp_path / "p" / "report.csv").iloc[0]
    assert (table["ci_low"], table["ci_high"]) == (0.0, 1.0)  # the plain t interval: [-0.25, 1.24]
    assert "95% CI: Student's t interval of the mean, cut to [0, 1], the values val_acc can take" in " ".join(out.split())


@pytest.mark.slow
@pytest.mark.parametrize("at", ["best", "final"])
def test_the_report_of_a_sweep_shows_the_values_the_sweep_ranked_its_trials_by(capsys, tmp_path, at):
    """A sweep with `at: best|final` and `optlab report SWEEP` agree on each trial's value and
    say which epoch it is (lr 1.2 peaks at epoch 2 and ends lower, so the two differ)."""
    from testkit import TINY_BASE, read_rows, sweep_folder, write_sweep

    base = [o for o in TINY_BASE if not o.startswith("trainer.epochs")]
    path = write_sweep(tmp_path, sampler="grid", at=at, space={"optimizer.lr": [0.8, 1.2]},
                       base=[*base, "trainer.epochs=5", f"trainer.out_dir={tmp_path / 'outputs'}"])
    assert main(["sweep", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"val_acc (validation, {at} epoch)" in out and f"completed val_acc (validation, {at} epoch) 0." in err
    folder = sweep_folder(tmp_path)
    code, out, err = report_cli(capsys, folder, "--by", "optimizer.lr", "--no-plots", "--out", tmp_path / "r")
    assert code == 0 and f"val_acc (validation, {at} epoch) by optimizer.lr" in out
    assert f"note: val_acc at each run's {at} epoch, as the sweep valued its trials" in err
    table = pd.read_csv(tmp_path / "r" / "report.csv").set_index("optimizer.lr")
    assert set(table["at"]) == {at}
    for row in read_rows(folder):
        assert table.loc[float(row["param.optimizer.lr"]), "mean"] == pytest.approx(float(row["value"]), abs=1e-12)
    steep = next(r for r in read_rows(folder) if float(r["param.optimizer.lr"]) == 1.2)
    curve = pd.read_csv(folder / steep["run_dirs"] / "metrics.csv")["val_acc"]
    assert curve.max() > curve.iloc[-1] + 0.05  # best and final differ: the test can tell them apart


def test_a_report_of_one_run_folder_goes_beside_it_not_inside(capsys, root):
    code, out, _ = report_cli(capsys, root / "adam-0", "--no-plots")
    assert code == 0
    folder = root / "report-adam-0-val_acc-final"
    assert out.strip().splitlines()[-1] == str(folder) and (folder / "report.csv").is_file()
    assert sorted(p.name for p in (root / "adam-0").iterdir()) == ["config.yaml", "metrics.csv", "summary.json"]


@pytest.mark.slow
def test_real_runs_with_and_without_clipping_and_a_transfer_are_not_pooled(capsys, tmp_path, monkeypatch):
    """The commands as a user types them: two seeds without clipping, two with
    regularize.clip_norm=0.01, and runs of one seed from scratch, from another run
    (init.from) and on a class subset: each configuration its own group."""
    monkeypatch.chdir(tmp_path)
    quick = ["trainer.epochs=1", "trainer.progress=false"]
    for seed in (0, 1):
        for clip in ([], ["regularize.clip_norm=0.01"]):
            assert main(["train", *quick, f"trainer.seed={seed}", "trainer.out_dir=clip", *clip]) == 0
    source = capsys.readouterr().out.strip().splitlines()[-1]
    for extra in ([], [f"init.from={source}"], ["data.keep_classes=[0,1,2,3,4]"]):
        assert main(["train", *quick, "trainer.out_dir=transfer", *extra]) == 0
    capsys.readouterr()
    code, out, _ = report_cli(capsys, "clip", "--no-plots")
    table = pd.read_csv(out.strip().splitlines()[-1] + "/report.csv")
    assert code == 0 and sorted(zip(table["group"], table["n"])) == [("regularize.clip_norm=0.01", 2),
                                                                     ("regularize.clip_norm=null", 2)]
    code, out, _ = report_cli(capsys, "transfer", "--no-plots")
    table = pd.read_csv(out.strip().splitlines()[-1] + "/report.csv")
    assert code == 0 and table["n"].tolist() == [1, 1, 1]
    assert sum("init.from=null" in g and "data.keep_classes=null" in g for g in table["group"]) == 1
