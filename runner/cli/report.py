"""`optlab report`: argparse, the terminal table (rich) and the files of a report folder.

Tables come from optlab.report, pictures from optlab.plots; this module only decides what
goes where. Warnings (skipped folders, notes) go to stderr; the last stdout line is always
the report folder.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING


from optlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd
from optlab.runs.files import make_dirs, refuse_symlink, write_atomic

DESCRIPTION = """\
Compare runs, aggregated over seeds. PATH is any mix of run folders, sweep folders
(outputs/sweeps/<study>) and parent folders, searched recursively. The metric is read on
the validation split at each run's final epoch (--at best: its best epoch); a test number
in summary.json (test_acc) is shown beside it. Runs with the same config and seed are
duplicates: they count once (n = distinct seeds), with their mean. Writes to --out
(default: <first PATH>/report-<options>, e.g. report-by_optimizer-val_acc-final; for a run
folder, beside it: <its parent>/report-<run>-<options>):
report.csv (one row per group: rank, metric and epoch, n, runs (folders), duplicates,
counts by status, mean, std, standard error, 95% t confidence interval, best and worst
seed, epochs to --target, and `varies`: other keys that differ inside the group), runs.csv
(one row per run: every config key and summary number), PNG plots (learning curves per
group, the metric against each numeric key that varies, and for sweeps the best-so-far
curve and parameter importances per branch of a conditional space), and with --compare,
compare.csv. A folder holding a report made with other options is not overwritten without
--force. Folders that cannot be read are listed on stderr with the reason and left out;
the rest is reported. The last line of stdout is the report folder."""

EPILOG = """\
examples:
  optlab report outputs/runs                      group by the config keys that differ
  optlab report outputs/sweeps/lr_wd --by optimizer --target 0.95
  optlab report outputs/sweeps/a outputs/sweeps/b --compare --by optimizer"""


AT_CHOICES = ("final", "best")  # which epoch of a metrics.csv column (optlab.report.resolve_metric)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="tables and plots comparing runs and sweeps, aggregated over seeds",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run, sweep or parent folders")
    parser.add_argument("--by", metavar="KEY[,KEY...]",
                        help="group by these config keys: groups (optimizer, norm) or dotted keys "
                             "(optimizer.lr); default: the keys that differ between the runs, seed excluded")
    parser.add_argument("--metric", default="val_acc",
                        help="a metrics.csv column (val_acc, val_loss; read at the epoch --at says), or a "
                             "summary number (best_val_acc, wall_time_s); default: val_acc")
    parser.add_argument("--at", choices=AT_CHOICES,
                        help="which epoch of a metrics.csv column: each run's final epoch (default) or its "
                             "best one (chosen on that validation column)")
    parser.add_argument("--direction", choices=("auto", "max", "min"), default="auto",
                        help="whether higher is better; auto: lower for names with loss/time/error")
    parser.add_argument("--target", type=float, metavar="VALUE",
                        help="report epochs until the metric's curve first reaches VALUE")
    parser.add_argument("--stats-over", default="completed", metavar="STATUS[,STATUS...]",
                        help="statuses whose runs enter mean/std/CI (default: completed); all are counted")
    parser.add_argument("--out", metavar="DIR",
                        help="report folder (default: <first PATH>/report-<options>, named after --by, "
                             "--metric, --at and the other options that change the numbers; beside a run "
                             "folder, not inside it: <parent>/report-<run>-<options>)")
    parser.add_argument("--force", action="store_true",
                        help="replace a report made with other options in --out (otherwise: exit 2)")
    parser.add_argument("--format", choices=("table", "csv", "md", "json"), default="table",
                        help="how stdout shows the group table; csv/md/json also write report.<fmt>")
    parser.add_argument("--compare", action="store_true",
                        help="exactly two PATHs A and B: side by side, A - B with Welch's 95%% CI")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--html", action="store_true",
                        help="also write report.html: one self-contained interactive page (tables, parallel "
                             "coordinates that filter them, charts) that opens offline in any browser")
    parser.add_argument("--layers", action="store_true",
                        help="plot per-layer diagnostics (layers.csv of runs trained with trainer.diagnostics=true): "
                             "activation std and gradient norm against depth, saturation/dead units over training")
    parser.set_defaults(handler=run_report)


def report_args(argv: list[str]) -> argparse.Namespace:
    """`optlab report ARGV`'s arguments, for a command that ends with a report (sweep --html)."""
    parser = argparse.ArgumentParser(prog="optlab")
    register(parser.add_subparsers())
    return parser.parse_args(["report", *argv])


def run_report(args) -> int:
    from optlab import report

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
    metric = report.resolve_metric(args.metric, collection, args.direction, _at(args, collection))
    keys = report.grouping_keys(args.by, collection) if args.by or not args.compare else []  # compare: all A vs all B
    stats_over = report.chosen_statuses(args.stats_over)
    table_keys = ["source", *keys] if args.compare else keys
    table = report.aggregate(collection, table_keys, metric, args.target, stats_over)
    options = _options(args, metric, stats_over)
    folder = ReportFolder(Path(args.out) if args.out else default_out(args.paths[0], options), options, args.force)
    _warn_duplicates(table)
    folder.write("runs.csv", collection.runs.to_csv(index=False))
    folder.write("report.csv", table.to_csv(index=False))
    show_table(table, table_keys, metric, args.format, folder)
    side_by_side = None
    if args.compare:
        side_by_side = report.compare(collection, tuple(str(Path(p)) for p in args.paths), keys, metric, stats_over)
        folder.write("compare.csv", side_by_side.to_csv(index=False))
        _print(compare_table(side_by_side, metric, args.paths))
    if not args.no_plots:
        for note in write_plots(collection, table, table_keys, metric, stats_over, folder):
            print(f"note: {note}", file=sys.stderr)
    if args.html:
        from optlab.report import html_page, html_runs

        page = html_runs.runs_page(collection, table, table_keys, metric, stats_over, args.paths, side_by_side)
        folder.write("report.html", html_page.render(page))
    folder.finish()
    print(folder.path)
    return 0


def run_layer_report(args) -> int:
    from optlab.report.layer_plots import write_layer_plots

    run_dirs = sorted({p.parent for path in args.paths for p in _layer_tables(Path(path))})
    if not run_dirs:
        raise DataError(f"no layers.csv under {', '.join(args.paths)} (train with trainer.diagnostics=true)")
    out = Path(args.out) if args.out else report_home(args.paths[0], "report-layers")
    for path in write_layer_plots(run_dirs, out):
        print(f"wrote {path}", file=sys.stderr)
    if args.html:
        from optlab.report import html_layers, html_page

        print(f"wrote {html_page.write(out / 'report.html', html_layers.layers_page(run_dirs))}", file=sys.stderr)
    print(out)
    return 0


# ---------------------------------------------------------------- the report folder

def _options(args, metric, stats_over: tuple[str, ...]) -> dict:
    """Everything that changes the report's numbers (not how stdout shows them)."""
    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    return {"paths": [os.path.realpath(p) for p in args.paths], "by": by, "metric": metric.name, "at": metric.at,
            "direction": args.direction, "target": args.target, "stats_over": list(stats_over),
            "compare": bool(args.compare)}


def default_out(first_path: str, options: dict) -> Path:
    """<first PATH>/report-<options>: report-by_optimizer-val_acc-final, report-val_acc-best-target_0.9, ..."""
    metric, at = options["metric"], options["at"]
    parts = ["report", *(["compare"] if options["compare"] else []),
             *([f"by_{'+'.join(options['by'])}"] if options["by"] else []),
             metric if at is None or metric.startswith(f"{at}_") else f"{metric}-{at}",
             *([options["direction"]] if options["direction"] != "auto" else []),
             *([f"target_{options['target']:g}"] if options["target"] is not None else []),
             *([f"over_{'+'.join(options['stats_over'])}"] if options["stats_over"] != ["completed"] else [])]
    return report_home(first_path, "-".join(parts))


def report_home(first_path: str, name: str) -> Path:
    """Where a report named `name` goes by default: inside the first PATH, or, when that is a
    run folder (which holds the run alone), beside it, named after it."""
    from optlab.report.load import RUN_FILES

    path = Path(first_path)
    if any((path / f).is_file() for f in RUN_FILES):
        return path.parent / _file_name(name.replace("report", f"report-{path.name}", 1))
    return path / _file_name(name)


class ReportFolder:
    """Where a report goes. report_options.json holds the options that made the report in it
    and the files it wrote: a report with other options refuses the folder (unless forced), and
    a rerun deletes the files of the previous report that it did not write again (a plot
    of a key that no longer varies), never any other file."""

    RECORD = "report_options.json"

    def __init__(self, path: Path, options: dict, force: bool):
        self.path, self.options, self.written = path, options, []
        refuse_symlink(path)  # a link planted in the runs' folder would send the report anywhere
        previous = self._previous()
        if previous is not None and previous.get("options") != options and not force:
            changed = _differences(previous.get("options"), options)
            raise ConfigError(f"{path} holds a report made with other options ({changed}); "
                              "choose another --out, or add --force to replace it")
        self.previous_files = list((previous or {}).get("files", []))
        make_dirs(path)

    def _previous(self) -> dict | None:
        """The record of the report in the folder ({} for a report without one), None if none."""
        try:
            record = json.loads((self.path / self.RECORD).read_text())
            return record if isinstance(record, dict) else {}
        except FileNotFoundError:
            return {} if (self.path / "report.csv").exists() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}

    def write(self, name: str, text: str) -> None:
        write_atomic(self.path / name, text)
        self.written.append(name)

    def save(self, fig, name: str) -> None:
        from optlab.report import plots

        name = _file_name(name)
        tmp = self.path / f".{Path(name).stem}.{os.getpid()}.tmp.png"
        plots.save(fig, tmp)
        os.replace(tmp, self.path / name)
        self.written.append(name)

    def finish(self) -> None:
        for name in set(self.previous_files) - set(self.written):
            if Path(name).name == name:  # a bare file name, as recorded: nothing outside the folder
                (self.path / name).unlink(missing_ok=True)
        record = {"options": self.options, "files": sorted(set(self.written))}
        write_atomic(self.path / self.RECORD, json.dumps(record, indent=2) + "\n")


def _differences(previous: dict | None, options: dict) -> str:
    if not previous:
        return "not recorded"
    changed = [f"{k} {previous.get(k)!r} -> {v!r}" for k, v in options.items() if previous.get(k) != v]
    return ", ".join(changed)


def _layer_tables(path: Path) -> list[Path]:
    return [path / "layers.csv"] if (path / "layers.csv").is_file() else list(path.rglob("layers.csv"))


def _warn(collection) -> None:
    for skipped in collection.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    for note in collection.notes:
        print(f"note: {note}", file=sys.stderr)


def _warn_duplicates(table: pd.DataFrame) -> None:
    """One line: duplicates (same config and seed) were merged, how many, in which groups."""
    merged = table[table["duplicates"] > 0]
    if merged.empty:
        return
    where = "; ".join(f"{row.group}: {row.n + row.duplicates} folders, n={row.n}" for row in merged.itertuples())
    print(f"warning: merged {int(merged['duplicates'].sum())} duplicate run folder(s) (same config and seed "
          f"as another; counted once, values averaged): {where}", file=sys.stderr)


def _check_disjoint(collection, paths: list[str]) -> None:
    a, b = (os.path.realpath(p) for p in paths)
    if a == b or a.startswith(b + os.sep) or b.startswith(a + os.sep):
        raise ConfigError(f"--compare: {paths[0]} and {paths[1]} overlap; give two separate folders")
    found = set(collection.runs["source"])
    for path in paths:
        if str(Path(path)) not in found:
            raise DataError(f"--compare: no readable runs under {path}")


def _at(args, collection) -> str | None:
    """--at, else for the runs of sweeps the epoch their trials were valued at (sweep.json's
    `at`), said on stderr; else None (the final epoch)."""
    from optlab import report

    if args.at is not None or args.metric not in collection.curves.columns:
        return args.at
    at = report.sweeps_at(collection.runs, collection.sweeps)
    if at is not None:
        print(f"note: {args.metric} at each run's {at} epoch, as the sweep valued its trials "
              f"(--at {'final' if at == 'best' else 'best'} for the other)", file=sys.stderr)
    return at


# ---------------------------------------------------------------- terminal

def _print(renderable) -> None:
    from optlab.cli.display import print_table

    print_table(renderable)


def show_table(table: pd.DataFrame, keys: list[str], metric, fmt: str, folder: ReportFolder) -> None:
    if fmt == "table":
        _print(group_table(table, keys, metric))
        return
    text = {"csv": lambda: table.to_csv(index=False),
            "md": lambda: to_markdown(table),
            "json": lambda: table.to_json(orient="records", indent=2) + "\n"}[fmt]()
    if fmt != "csv":
        folder.write(f"report.{fmt}", text)
    sys.stdout.write(text)


def group_table(table: pd.DataFrame, keys: list[str], metric):
    """The rich view of report.csv: rank, keys, n, mean ± CI, std, the test number, best/worst
    seed, statuses; the caption names the keys each group pools."""
    from rich.table import Table

    from optlab.report import show_value

    arrow = "higher" if metric.maximize else "lower"
    test = metric.test_column if metric.test_column and "test_mean" in table else None
    pooled = table["varies"].fillna("").astype(str).ne("").any()
    n = "distinct configuration and seed pairs" if pooled else "distinct seeds"
    view = Table(title=f"{metric.label} by {', '.join(keys) or 'all runs'} "
                       f"({arrow} is better; n = {n} used / run folders)",
                 caption=table_caption(table, test, metric), caption_justify="left")
    shown = keys if len(keys) <= 2 else ["group"]  # many keys: one 'k=v, ...' label column
    for name in ["rank", *shown, "n", "mean", "95% CI", "std", *([test, f"{test} 95% CI"] if test else []),
                 "best (seed)", "worst (seed)", "diverged", "pruned", "failed", "other",
                 *(["target hit", "epochs"] if "target_reached" in table else [])]:
        view.add_column(name, justify="left" if name in shown else "right")
    for _, row in table.iterrows():
        cells = ["" if _missing(row["rank"]) else str(row["rank"]), *(show_value(row[k]) for k in shown),
                 f"{row['n']}/{row['runs']}", _fmt(row["mean"]),
                 f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]", _fmt(row["std"]),
                 *([_fmt(row["test_mean"]), f"[{_fmt(row['test_ci_low'])}, {_fmt(row['test_ci_high'])}]"] if test else []),
                 f"{_fmt(row['best'])} ({_fmt(row['best_seed'])})", f"{_fmt(row['worst'])} ({_fmt(row['worst_seed'])})",
                 *(_count(row[s]) for s in ("diverged", "pruned", "failed")),
                 _count(row["interrupted"] + row["running"] + row["other_status"])]
        if "target_reached" in table:
            cells += [f"{row['target_reached']}/{row['target_reached'] + row['target_missed']}",
                      _fmt(row["epochs_to_target"])]
        view.add_row(*cells)
    return view


def table_caption(table: pd.DataFrame, test_column: str | None, metric=None) -> str | None:
    """What the table does not show in its cells: keys pooled inside groups, the test split,
    how the intervals of a bounded metric stay inside its range."""
    lines = []
    varies = table.set_index("group")["varies"].fillna("").astype(str)
    pooled = varies[varies != ""]
    if len(pooled) == len(varies) and pooled.nunique() == 1:
        lines.append(f"every group pools runs that also differ in: {pooled.iloc[0]}")
    elif len(pooled):
        lines += ["pooled runs that also differ in:", *(f"  {g}: {v}" for g, v in pooled.items())]
    if test_column:
        lines.append(f"{test_column}: the test split, measured once with each run's best-validation-epoch weights")
    if metric is not None:
        lines.append(interval_note(metric))
    return "\n".join(lines) or None


def interval_note(metric, welch: bool = False) -> str:
    """How the table's 95% intervals are made, in one line."""
    from optlab.report import range_text
    from optlab.report.stats import ANY, difference_range

    kind = "Welch's t interval of A - B" if welch else "Student's t interval of the mean"
    if metric.bounds == ANY:
        return f"95% CI: {kind}"
    bounds = difference_range(metric.bounds) if welch else metric.bounds
    subject = "A - B" if welch else (metric.curve or metric.name)
    return (f"95% CI: {kind}, cut to {range_text(bounds)}, the values {subject} can take (the true value lies "
            f"there, so the cut keeps the t interval's 95% coverage)")


def compare_table(side_by_side: pd.DataFrame, metric, paths: list[str]):
    from rich.table import Table

    view = Table(title=f"{metric.label}: A = {paths[0]}, B = {paths[1]} (A - B with Welch's 95% CI; n = distinct seeds)",
                 caption=interval_note(metric, welch=True), caption_justify="left")
    for name in ("group", "A n", "A mean", "B n", "B mean", "A - B", "95% CI", "p"):
        view.add_column(name, justify="left" if name == "group" else "right")
    for _, row in side_by_side.iterrows():
        view.add_row(str(row["group"]), str(row["A_n"]), _fmt(row["A_mean"]), str(row["B_n"]), _fmt(row["B_mean"]),
                     _fmt(row["diff"]), f"[{_fmt(row['diff_ci_low'])}, {_fmt(row['diff_ci_high'])}]",
                     _fmt(row["p_value"]))
    return view


def _fmt(value) -> str:
    if _missing(value):
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


def write_plots(collection, table: pd.DataFrame, keys: list[str], metric, stats_over, folder: ReportFolder) -> list[str]:
    """Every PNG this report can draw; returns notes on the ones it could not."""
    from optlab import report
    from optlab.report import plots

    notes = []
    order = list(table["group"])
    for column in dict.fromkeys(c for c in (metric.curve, "train_loss") if c):
        curves = report.group_curves(collection, keys, column)
        if not curves.empty:
            folder.save(plots.learning_curves(curves, column, order, ", ".join(keys)), f"curves_{column}.png")
    runs = collection.runs.assign(replicate=report.replicate_ids(collection.runs, collection.config_keys, keys))
    used = runs[runs["status"].isin(stats_over) & runs[metric.column].notna()]
    seeds = report.merge_duplicates(used, [metric.column])
    varying = report.numeric_keys(runs, report.differing_keys(runs, collection.config_keys))
    for key in varying[:MAX_KEY_PLOTS]:
        others, pooled = plots.colour_keys(seeds, key, keys)
        hue = report.group_labels(seeds, others) if others else None
        fig = plots.metric_vs_key(seeds, key, metric.column, metric.label, hue, ", ".join(others),
                                  report.log_scaled(collection.sweeps, key), ", ".join(pooled))
        folder.save(fig, f"{metric.name}_vs_{key}.png")
    for sweep in collection.sweeps:
        notes += _sweep_plots(sweep, metric, folder)
    return notes


def _sweep_plots(sweep, metric, folder: ReportFolder) -> list[str]:
    from optlab import report
    from optlab.report import plots
    from optlab.sweep.spec import metric_label

    name = metric_label(str(sweep.meta.get("metric") or "value"), report.sweep_at(sweep))
    history = report.best_so_far(sweep.trials, report.sweep_direction(sweep, metric.maximize))
    notes = []
    if history.empty:
        notes.append(f"{sweep.study}: no completed trials in trials.csv, best-so-far plot skipped")
    else:
        folder.save(plots.best_so_far(history, name, sweep.study), f"sweep_{sweep.study}_best_so_far.png")
    importances, why_not = report.param_importances(sweep)
    notes += why_not
    if importances is not None:
        folder.save(plots.importances(importances, sweep.study, name), f"sweep_{sweep.study}_importances.png")
    return notes + _pbt_outputs(sweep, folder)


def _pbt_outputs(sweep, folder: ReportFolder) -> list[str]:
    """A PBT sweep's figure of its members per epoch and its table of final members."""
    from optlab.report.pbt import pbt_figure, pbt_view

    view = pbt_view(sweep)
    if view is None:
        return []
    folder.save(pbt_figure(view), f"sweep_{sweep.study}_pbt.png")
    folder.write(f"sweep_{sweep.study}_pbt_members.csv", view.members.to_csv(index=False))
    _print(members_table(view))
    return [f"{sweep.study}: a PBT sweep; each member's config.yaml (and the groups above) holds its initial values, "
            f"its values per epoch are in metrics.csv and sweep_{sweep.study}_pbt.png"]


def members_table(view):
    from rich.table import Table

    table = Table(title=f"PBT sweep {view.study}: final members ({view.label})")
    for name in view.members.columns:
        table.add_column(name, justify="left" if name in ("run", "donors") else "right")
    for _, row in view.members.iterrows():
        table.add_row(*(_fmt(v) for v in row))
    return table


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=+" else "_" for c in name)


def _missing(value) -> bool:
    """None, NaN or pandas' NA (pandas is imported only by reports, not by `optlab train`)."""
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
