"""`optlab report` end to end: in-process on fixture folders, and through a subprocess on
two real tiny training runs."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from runner.cli import main
from test_report import config, make_sweep, write_run

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
    code, out, err = report_cli(capsys, root, "--target", "0.9")
    assert code == 0
    folder = root / "report"
    assert out.strip().splitlines()[-1] == str(folder)
    assert "skipped" in err and "half" in err and "missing summary.json" in err
    table = pd.read_csv(folder / "report.csv").set_index("group")
    assert list(table.index) == ["optimizer=adam", "optimizer=sgd"]
    assert table.loc["optimizer=adam", "mean"] == pytest.approx(0.925)
    assert (table.loc["optimizer=sgd", "diverged"], table.loc["optimizer=sgd", "n_used"]) == (1, 2)
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
        assert lines[0].startswith("rank,group,optimizer,n_runs")
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
        assert_png(folder / "report" / name)


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
    from runner.train import train

    for optimizer in ("adam", "sgd"):  # real training, in this process (torch is already loaded)
        assert train(compose_cfg(f"optimizer={optimizer}", "model.width=16")).status == "completed"
    result = optlab("report", "outputs", "--by", "optimizer", "--target", "0.3", timeout=120)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / result.stdout.strip().splitlines()[-1]
    assert folder == tmp_path / "outputs" / "report"
    table = pd.read_csv(folder / "report.csv")
    assert sorted(table["optimizer"]) == ["adam", "sgd"] and (table["completed"] == 1).all()
    assert table["mean"].between(0, 1).all() and table["rank"].tolist() == [1, 2]
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 2 and (runs["epochs_done"] == 2).all()
    for name in ("curves_val_acc.png", "curves_train_loss.png"):
        assert_png(folder / name)
    # the same figures, inspected as objects
    from runner import plots, report

    collection = report.load([tmp_path / "outputs"])
    fig = plots.learning_curves(report.group_curves(collection, ["optimizer"], "val_acc"), "val_acc")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "val_acc")
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["optimizer=adam (n=1)", "optimizer=sgd (n=1)"]
