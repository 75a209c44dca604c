"""`optlab report`: argparse, the terminal table (rich) and the files of a report folder.

Tables come from runner.report, pictures from runner.plots; this module only decides what
goes where. Warnings (skipped folders, notes) go to stderr; the last stdout line is always
the report folder.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd

from runner.errors import ConfigError, DataError
from runner.metrics import write_atomic

DESCRIPTION = """\
Compare runs, aggregated over seeds. PATH is any mix of run folders, sweep folders
(outputs/sweeps/<study>) and parent folders, searched recursively. Writes to --out
(default: <first PATH>/report): report.csv (one row per group: rank, counts by status, n,
mean, std, standard error, 95% t confidence interval, best and worst seed, epochs to
--target), runs.csv (one row per run: every config key and summary number), PNG plots
(learning curves per group, the metric against each numeric key that varies, and for
sweeps the best-so-far curve and Optuna's parameter importances), and with --compare,
compare.csv. Folders that cannot be read are listed on stderr with the reason and left
out; the rest is reported. The last line of stdout is the report folder."""

EPILOG = """\
examples:
  optlab report outputs/runs                      group by the config keys that differ
  optlab report outputs/sweeps/lr_wd --by optimizer --target 0.95
  optlab report outputs/sweeps/a outputs/sweeps/b --compare --by optimizer"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="tables and plots comparing runs and sweeps, aggregated over seeds",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run, sweep or parent folders")
    parser.add_argument("--by", metavar="KEY[,KEY...]",
                        help="group by these config keys: groups (optimizer, norm) or dotted keys "
                             "(optimizer.lr); default: the keys that differ between the runs, seed excluded")
    parser.add_argument("--metric", default="val_acc",
                        help="a metrics.csv column, meaning its best epoch (val_acc, val_loss), or a "
                             "summary number (final_val_acc, wall_time_s); default: val_acc")
    parser.add_argument("--direction", choices=("auto", "max", "min"), default="auto",
                        help="whether higher is better; auto: lower for names with loss/time/error")
    parser.add_argument("--target", type=float, metavar="VALUE",
                        help="report epochs until the metric's curve first reaches VALUE")
    parser.add_argument("--stats-over", default="completed", metavar="STATUS[,STATUS...]",
                        help="statuses whose runs enter mean/std/CI (default: completed); all are counted")
    parser.add_argument("--out", metavar="DIR", help="report folder (default: <first PATH>/report)")
    parser.add_argument("--format", choices=("table", "csv", "md", "json"), default="table",
                        help="how stdout shows the group table; csv/md/json also write report.<fmt>")
    parser.add_argument("--compare", action="store_true",
                        help="exactly two PATHs A and B: side by side, A - B with Welch's 95%% CI")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--layers", action="store_true",
                        help="plot per-layer diagnostics (layers.csv of runs trained with trainer.diagnostics=true): "
                             "activation std and gradient norm against depth, saturation/dead units over training")
    parser.set_defaults(handler=run_report)


def run_report(args) -> int:
    from runner import report

    if args.layers:
        return run_layer_report(args)
    if args.compare and len(args.paths) != 2:
        raise ConfigError(f"--compare takes exactly two PATHs (A B), got {len(args.paths)}")
    collection = report.load(Path(p) for p in args.paths)
    _warn(collection)
    if collection.runs.empty:
        raise DataError(f"no readable run folders under {', '.join(args.paths)}")
    if args.compare:
        _check_disjoint(collection, args.paths)
    metric = report.resolve_metric(args.metric, collection, args.direction)
    keys = _keys(args.by, collection) if args.by or not args.compare else []  # compare: all A vs all B
    stats_over = _statuses(args.stats_over)
    table_keys = ["source", *keys] if args.compare else keys
    table = report.aggregate(collection, table_keys, metric, args.target, stats_over)
    out = Path(args.out) if args.out else Path(args.paths[0]) / "report"
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "runs.csv", collection.runs.to_csv(index=False))
    write_atomic(out / "report.csv", table.to_csv(index=False))
    show_table(table, table_keys, metric, args.format, out)
    if args.compare:
        side_by_side = report.compare(collection, tuple(str(Path(p)) for p in args.paths), keys, metric, stats_over)
        write_atomic(out / "compare.csv", side_by_side.to_csv(index=False))
        _console().print(compare_table(side_by_side, metric, args.paths))
    if not args.no_plots:
        for note in write_plots(collection, table, table_keys, metric, stats_over, out):
            print(f"note: {note}", file=sys.stderr)
    print(out)
    return 0


def run_layer_report(args) -> int:
    from runner.layer_plots import write_layer_plots

    run_dirs = sorted({p.parent for path in args.paths for p in _layer_tables(Path(path))})
    if not run_dirs:
        raise DataError(f"no layers.csv under {', '.join(args.paths)} (train with trainer.diagnostics=true)")
    out = Path(args.out) if args.out else Path(args.paths[0]) / "report"
    for path in write_layer_plots(run_dirs, out):
        print(f"wrote {path}", file=sys.stderr)
    print(out)
    return 0


def _layer_tables(path: Path) -> list[Path]:
    return [path / "layers.csv"] if (path / "layers.csv").is_file() else list(path.rglob("layers.csv"))


def _warn(collection) -> None:
    for skipped in collection.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    for note in collection.notes:
        print(f"note: {note}", file=sys.stderr)


def _check_disjoint(collection, paths: list[str]) -> None:
    a, b = (os.path.realpath(p) for p in paths)
    if a == b or a.startswith(b + os.sep) or b.startswith(a + os.sep):
        raise ConfigError(f"--compare: {paths[0]} and {paths[1]} overlap; give two separate folders")
    found = set(collection.runs["source"])
    for path in paths:
        if str(Path(path)) not in found:
            raise DataError(f"--compare: no readable runs under {path}")


def _statuses(text: str) -> tuple[str, ...]:
    from runner.report import STATUSES

    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown or not chosen:
        raise ConfigError(f"--stats-over {text}: choose from: {', '.join(STATUSES)}")
    return chosen


def _keys(by: str | None, collection) -> list[str]:
    from runner import report

    if by is None:
        return report.differing_keys(collection.runs, collection.config_keys)
    keys = [k.strip() for k in by.split(",") if k.strip()]
    report.check_keys(keys, collection)
    return keys


# ---------------------------------------------------------------- terminal

def _console():
    """A real terminal's width; 160 columns when stdout is a file or pipe."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def show_table(table: pd.DataFrame, keys: list[str], metric, fmt: str, out: Path) -> None:
    if fmt == "table":
        _console().print(group_table(table, keys, metric))
        return
    text = {"csv": lambda: table.to_csv(index=False),
            "md": lambda: to_markdown(table),
            "json": lambda: table.to_json(orient="records", indent=2) + "\n"}[fmt]()
    if fmt != "csv":
        write_atomic(out / f"report.{fmt}", text)
    sys.stdout.write(text)


def group_table(table: pd.DataFrame, keys: list[str], metric):
    """The rich view of report.csv: rank, keys, n, mean ± CI, std, best/worst seed, statuses."""
    from rich.table import Table

    arrow = "higher" if metric.maximize else "lower"
    view = Table(title=f"{metric.name} by {', '.join(keys) or 'all runs'} ({arrow} is better; n = used/runs)")
    shown = keys if len(keys) <= 2 else ["group"]  # many keys: one 'k=v, ...' label column
    for name in ["rank", *shown, "n", "mean", "95% CI", "std", "best (seed)", "worst (seed)",
                 "diverged", "pruned", "failed", "other", *(["target hit", "epochs"] if "target_reached" in table else [])]:
        view.add_column(name, justify="left" if name in shown else "right")
    for _, row in table.iterrows():
        cells = ["" if pd.isna(row["rank"]) else str(row["rank"]), *(_fmt(row[k]) for k in shown),
                 f"{row['n_used']}/{row['n_runs']}", _fmt(row["mean"]),
                 f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]", _fmt(row["std"]),
                 f"{_fmt(row['best'])} ({_fmt(row['best_seed'])})", f"{_fmt(row['worst'])} ({_fmt(row['worst_seed'])})",
                 *(_count(row[s]) for s in ("diverged", "pruned", "failed")),
                 _count(row["interrupted"] + row["running"] + row["other_status"])]
        if "target_reached" in table:
            cells += [f"{row['target_reached']}/{row['n_runs']}", _fmt(row["epochs_to_target"])]
        view.add_row(*cells)
    return view


def compare_table(side_by_side: pd.DataFrame, metric, paths: list[str]):
    from rich.table import Table

    view = Table(title=f"{metric.name}: A = {paths[0]}, B = {paths[1]} (A - B with Welch's 95% CI)")
    for name in ("group", "A n", "A mean", "B n", "B mean", "A - B", "95% CI", "p"):
        view.add_column(name, justify="left" if name == "group" else "right")
    for _, row in side_by_side.iterrows():
        view.add_row(str(row["group"]), str(row["A_n"]), _fmt(row["A_mean"]), str(row["B_n"]), _fmt(row["B_mean"]),
                     _fmt(row["diff"]), f"[{_fmt(row['diff_ci_low'])}, {_fmt(row['diff_ci_high'])}]",
                     _fmt(row["p_value"]))
    return view


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _count(value) -> str:
    return f"[red]{value}[/red]" if value else "0"


def to_markdown(table: pd.DataFrame) -> str:
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- pictures

MAX_KEY_PLOTS = 8


def write_plots(collection, table: pd.DataFrame, keys: list[str], metric, stats_over, out: Path) -> list[str]:
    """Every PNG this report can draw; returns notes on the ones it could not."""
    from runner import plots, report

    notes = []
    order = list(table["group"])
    for column in dict.fromkeys(c for c in (metric.curve, "train_loss") if c):
        curves = report.group_curves(collection, keys, column)
        if not curves.empty:
            _save(plots.learning_curves(curves, column, order), out / f"curves_{column}.png")
    runs = collection.runs
    used = runs[runs["status"].isin(stats_over)]
    varying = report.numeric_keys(runs, report.differing_keys(runs, collection.config_keys))
    for key in varying[:MAX_KEY_PLOTS]:
        others = [k for k in keys if k != key and k not in varying]  # colour by the categorical keys
        hue = report.group_labels(used, others) if others else None
        _save(plots.metric_vs_key(used, key, metric.column, metric.name, hue), out / _file_name(f"{metric.name}_vs_{key}.png"))
    for sweep in collection.sweeps:
        notes += _sweep_plots(sweep, metric, out)
    return notes


def _sweep_plots(sweep, metric, out: Path) -> list[str]:
    from runner import plots, report

    name = sweep.meta.get("metric") or "value"
    history = report.best_so_far(sweep.trials, report.sweep_direction(sweep, metric.maximize))
    notes = []
    if history.empty:
        notes.append(f"{sweep.study}: no completed trials in trials.csv, best-so-far plot skipped")
    else:
        _save(plots.best_so_far(history, name, sweep.study), out / _file_name(f"sweep_{sweep.study}_best_so_far.png"))
    importances, why_not = report.param_importances(sweep)
    if importances is None:
        notes.append(why_not)
    else:
        _save(plots.importances(importances, sweep.study), out / _file_name(f"sweep_{sweep.study}_importances.png"))
    return notes


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)


def _save(fig, path: Path) -> None:
    from runner import plots

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    plots.save(fig, tmp)
    os.replace(tmp, path)
