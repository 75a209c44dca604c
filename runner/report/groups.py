"""Groups of runs -> one row each: which metric, which keys, replicates and duplicates."""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import pandas as pd

from optlab.config.compose import GROUPS, is_bookkeeping
from optlab.errors import ConfigError, choose_from
from optlab.report.load import STATUSES, Collection
from optlab.report.stats import describe, value_range, welch
from optlab.runs.status import Status
from optlab.sweep.spec import metric_label, split_of  # noqa: F401  (plots.py asks groups for split_of)

SEED_KEY = "trainer.seed"  # replicates differ in it: never a grouping key, always part of a run's identity


ALL = "all"  # the one group's label when there are no grouping keys


@dataclass(frozen=True)
class Metric:
    name: str                  # as asked (--metric)
    column: str                # the runs column holding each run's value
    curve: str | None          # the metrics.csv column behind it, for curves and targets
    maximize: bool
    at: str | None = None      # "final" or "best" epoch; None for a summary number of no epoch
    test_column: str | None = None  # summary's test-split number beside it (test_acc), if runs have it

    @property
    def label(self) -> str:
        """What the number is: 'val_acc (validation, final epoch)'."""
        return metric_label(self.curve or self.name, self.at)

    @property
    def bounds(self) -> tuple[float, float]:
        """The values it can take, which its intervals stay inside ([0, 1] for val_acc)."""
        return value_range(self.curve or self.name)


def resolve_metric(name: str, collection: Collection, direction: str = "auto", at: str | None = None) -> Metric:
    """--metric NAME --at final|best: a metrics.csv column (val_acc) read at each run's final
    epoch (default) or its best one (summary's final_/best_<name>, else the curve's), or a
    summary number (best_val_acc, wall_time_s) used as is. Adds that per-run column to
    collection.runs when it has to compute it."""
    runs, curves = collection.runs, collection.curves
    maximize = _maximize(name, direction)
    if name in curves.columns and name not in ("run_dir", "epoch"):
        at = at or "final"
        column = _curve_value_column(collection, name, at, maximize)
        return Metric(name, column, name, maximize, at, _test_column(name, runs))
    if name in runs and pd.api.types.is_numeric_dtype(runs[name]):
        base = name.removeprefix("best_").removeprefix("final_")
        named_at = name[:-len(base) - 1] if base != name else None
        if at is not None and at != named_at:
            which = f" of the {named_at} epoch; use --metric {base} --at {at}" if named_at else ""
            raise ConfigError(f"--at {at}: --metric {name} is a summary number{which}")
        curve = base if base in curves.columns else None
        return Metric(name, name, curve, _maximize(name, direction), named_at, _test_column(base, runs))
    choices = sorted({c for c in curves.columns if c not in ("run_dir", "epoch")}
                     | {c for c in runs.columns if c not in collection.config_keys and pd.api.types.is_numeric_dtype(runs[c])})
    raise ConfigError(f"--metric {name}: not a metrics.csv column or summary number; {choose_from(name, choices)}")


def _curve_value_column(collection: Collection, name: str, at: str, maximize: bool) -> str:
    """Fill runs[f'{at}_{name}'] (summary's number where it has one, else the curve's)."""
    runs, curves = collection.runs, collection.curves
    column = f"{at}_{name}"
    if at == "final":  # the last row as written, NaN included (a run that diverged there)
        from_curve = runs["run_dir"].map(curves.groupby("run_dir", sort=False).tail(1).set_index("run_dir")[name])
        same_sense = True
    else:
        from_curve = runs["run_dir"].map(curves.groupby("run_dir")[name].agg("max" if maximize else "min"))
        same_sense = maximize == _maximize(name, "auto")  # summary's best_* uses the usual sense
    if column in runs and same_sense:
        runs[column] = pd.to_numeric(runs[column], errors="coerce").fillna(from_curve)
    else:
        column = column if column not in runs else f"{column}_{'max' if maximize else 'min'}"
        runs[column] = from_curve
    return column


def _test_column(name: str, runs: pd.DataFrame) -> str | None:
    """test_acc for val_acc: the summary number measured on the test split, when runs have one."""
    if not name.startswith("val_"):
        return None
    column = "test_" + name.removeprefix("val_")
    if column in runs and pd.to_numeric(runs[column], errors="coerce").notna().any():
        return column
    return None


def _maximize(name: str, direction: str) -> bool:
    if direction in ("max", "maximize"):
        return True
    if direction in ("min", "minimize"):
        return False
    return not any(word in name for word in ("loss", "time", "error"))


NULL = "null"  # how null, NaN and a key a run's options do not have show, and that they are one value


def cell_text(value) -> str:
    """One text per config value, for comparing runs: null, NaN and a missing key are all
    NULL (load.py gives a key an older run lacks its default first), so a key set in some
    runs and null in others takes two values, not one."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return NULL
    if isinstance(value, float):
        return f"{value:g}" if value == int(value) and abs(value) < 1e15 else repr(value)
    return str(value)


def differing_keys(runs: pd.DataFrame, config_keys: list[str]) -> list[str]:
    """Config keys with two or more values among the runs (null counts as a value:
    regularize.clip_norm null vs 0.01 differs; bookkeeping keys and the seed are excluded),
    less keys that merely follow a group's choice (adam's betas, sgd's momentum)."""
    keys = [k for k in config_keys if k in runs and k != SEED_KEY and not is_bookkeeping(k) and _distinct(runs[k]) > 1]
    groups = [k for k in keys if k in GROUPS]
    return [k for k in keys if not any(k.startswith(f"{g}.") and _follows(runs, g, k) for g in groups)]


def pooled_keys(runs: pd.DataFrame, config_keys: list[str], keys: list[str]) -> pd.Series:
    """Per group label: the config keys (seed and bookkeeping aside) that still vary among
    its runs, comma-separated ('' when the group's runs differ only in the seed)."""
    labels = group_labels(runs, keys)
    candidates = differing_keys(runs, config_keys)  # a key that varies inside a group varies overall
    return pd.Series({label: ",".join(k for k in differing_keys(frame, candidates) if k not in keys)
                      for label, frame in runs[candidates].groupby(labels, sort=False)}, dtype=object)


def replicate_ids(runs: pd.DataFrame, config_keys: list[str], keys: list[str] = ()) -> pd.Series:
    """One id per distinct (config, seed): runs that share it are duplicates of one replicate.
    Grouping keys that are not config keys (--compare's source) also tell runs apart."""
    identity = [k for k in config_keys if k in runs and not is_bookkeeping(k)]
    identity += [k for k in ("seed", *keys) if k in runs and k not in identity]
    cells = runs[identity].map(cell_text)  # lists are JSON text already; null and NaN alike
    return pd.Series(pd.util.hash_pandas_object(cells, index=False).to_numpy(), index=runs.index)


def merge_duplicates(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per replicate (frame needs a `replicate` column): its first run's cells, the
    mean of `columns` over its duplicates (identical on CPU, so the mean is any of them;
    float rounding apart on a GPU), and `folders`, how many runs it stands for."""
    merged = frame.drop_duplicates("replicate").set_index("replicate")
    values = frame[columns].apply(pd.to_numeric, errors="coerce").groupby(frame["replicate"], sort=False)
    merged[columns] = values.mean()
    merged["folders"] = values.size()
    return merged.reset_index()


def _distinct(values: pd.Series) -> int:
    return values.map(cell_text).nunique()


def _follows(runs: pd.DataFrame, group: str, key: str) -> bool:
    return bool((runs.groupby(group, dropna=False)[key].agg(_distinct) <= 1).all())


def numeric_keys(runs: pd.DataFrame, keys: list[str]) -> list[str]:
    out = []
    for key in keys:
        values = pd.to_numeric(runs[key], errors="coerce") if key in runs else pd.Series(dtype=float)
        is_bool = key in runs and runs[key].dropna().map(lambda v: isinstance(v, bool)).any()
        if not is_bool and values.notna().sum() and values.dropna().nunique() > 1:
            out.append(key)
    return out


def grouping_keys(by: str | list[str] | None, collection: Collection) -> list[str]:
    """The keys a report groups by: `by` (comma-separated, or a list), each checked against
    the runs; None: the config keys that differ between the runs, the seed excluded."""
    if by is None:
        return differing_keys(collection.runs, collection.config_keys)
    keys = [k.strip() for k in (by.split(",") if isinstance(by, str) else by) if k.strip()]
    check_keys(keys, collection)
    return keys


def check_keys(keys: list[str], collection: Collection) -> None:
    missing = [k for k in keys if k not in collection.runs.columns]
    if missing:
        known = ", ".join(k for k in collection.config_keys if "." not in k) or "none"
        close = difflib.get_close_matches(missing[0], collection.config_keys, n=1, cutoff=0.6)
        raise ConfigError(f"--by {','.join(missing)}: not a config key of these runs; "
                          + (f"did you mean {close[0]}? " if close else "")
                          + f"config groups: {known} (dotted keys such as optimizer.lr also work)")


def group_labels(runs: pd.DataFrame, keys: list[str]) -> pd.Series:
    """One readable label per run: 'optimizer=adam, norm=batch' (or 'all')."""
    if not keys:
        return pd.Series(ALL, index=runs.index)
    parts = [runs[k].map(lambda v, k=k: f"{k}={show_value(v)}") for k in keys]
    return parts[0].str.cat(parts[1:], sep=", ") if len(parts) > 1 else parts[0]


def show_value(value) -> str:
    """A config value as a table or a label shows it (null for null, NaN or a missing key)."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:g}"
    return cell_text(value)


def epochs_to_target(curves: pd.DataFrame, column: str, target: float, maximize: bool) -> pd.Series:
    """Per run_dir: epochs trained (epoch index + 1) when `column` first reached the target;
    runs that never reached it are absent."""
    reached = curves[curves[column] >= target] if maximize else curves[curves[column] <= target]
    return reached.groupby("run_dir")["epoch"].min() + 1


def aggregate(collection: Collection, keys: list[str], metric: Metric, target: float | None = None,
              stats_over: tuple[str, ...] = (Status.COMPLETED,)) -> pd.DataFrame:
    """One row per group: rank, keys, which metric, n (distinct seeds used) and runs (folders),
    duplicates merged, counts by status, stats of the metric (and of its test number), best/worst
    seed, epochs to target, and `varies`: the other keys pooled in the group. Sorted best
    first; groups without a usable value last, unranked."""
    runs = collection.runs.assign(group=group_labels(collection.runs, keys),
                                  replicate=replicate_ids(collection.runs, collection.config_keys, keys))
    reached = None
    if target is not None:
        if metric.curve is None:
            raise ConfigError(f"--target: --metric {metric.name} has no per-epoch curve to test against")
        reached = epochs_to_target(collection.curves, metric.curve, target, metric.maximize)
    varies = pooled_keys(collection.runs, collection.config_keys, keys)
    rows = [{**_group_row(frame, keys, metric, reached, stats_over), "varies": varies[label]}
            for label, frame in runs.groupby("group", sort=False)]
    table = pd.DataFrame(rows)
    table = table.sort_values("mean", ascending=not metric.maximize, na_position="last", kind="stable")
    ranked = table["mean"].notna()
    table.insert(0, "rank", pd.array([pd.NA] * len(table), dtype="Int64"))
    table.loc[ranked, "rank"] = range(1, int(ranked.sum()) + 1)
    return table.reset_index(drop=True)


def _group_row(frame: pd.DataFrame, keys: list[str], metric: Metric, reached: pd.Series | None,
               stats_over: tuple[str, ...]) -> dict:
    used = frame[frame["status"].isin(stats_over) & frame[metric.column].notna()]
    columns = [metric.column, *([metric.test_column] if metric.test_column else [])]
    values = merge_duplicates(used[["replicate", "seed", *columns]], columns)
    stats = describe(values[metric.column], bounds=metric.bounds)
    row = {"group": frame["group"].iloc[0], **{k: frame[k].iloc[0] for k in keys},
           "metric": metric.name, "at": metric.at or "", "n": stats.pop("n"), "runs": len(frame),
           "duplicates": len(used) - len(values)}
    for status in STATUSES:
        row[status] = int((frame["status"] == status).sum())
    row["other_status"] = int((~frame["status"].isin(STATUSES)).sum())
    row.update(stats)
    row.update(_best_and_worst(values, metric))
    if metric.test_column:
        test = describe(values[metric.test_column], bounds=value_range(metric.test_column))
        row.update({f"test_{k}": v for k, v in test.items() if k != "sem"})
    if reached is not None:
        row.update(_target_row(frame, reached))
    return row


def _target_row(frame: pd.DataFrame, reached: pd.Series) -> dict:
    """Epochs to target per replicate (duplicates: their mean; reached when any of them did)."""
    epochs = frame["run_dir"].map(reached).groupby(frame["replicate"], sort=False).mean()
    return {"target_reached": int(epochs.notna().sum()), "target_missed": int(epochs.isna().sum()),
            "epochs_to_target": epochs.mean()}


def _best_and_worst(used: pd.DataFrame, metric: Metric) -> dict:
    if used.empty:
        return {"best_seed": None, "best": math.nan, "worst_seed": None, "worst": math.nan}
    values = used[metric.column].astype(float)
    best, worst = (values.idxmax(), values.idxmin()) if metric.maximize else (values.idxmin(), values.idxmax())
    return {"best_seed": used.at[best, "seed"], "best": values[best],
            "worst_seed": used.at[worst, "seed"], "worst": values[worst]}


def compare(collection: Collection, sources: tuple[str, str], keys: list[str], metric: Metric,
            stats_over: tuple[str, ...] = (Status.COMPLETED,)) -> pd.DataFrame:
    """Side by side per group: A's and B's n, mean and CI, and A - B with Welch's CI."""
    runs = collection.runs.assign(group=group_labels(collection.runs, keys),
                                  replicate=replicate_ids(collection.runs, collection.config_keys))
    used = runs[runs["status"].isin(stats_over) & runs[metric.column].notna()]
    rows = []
    for group in runs["group"].drop_duplicates():
        sides = [describe(merge_duplicates(used[(used["group"] == group) & (used["source"] == s)],
                                           [metric.column])[metric.column], bounds=metric.bounds) for s in sources]
        row = {"group": group}
        for name, side in zip("AB", sides):
            row.update({f"{name}_{k}": v for k, v in side.items() if k != "sem"})
        rows.append({**row, **welch(*sides, bounds=metric.bounds)})
    return pd.DataFrame(rows)


def group_curves(collection: Collection, keys: list[str], column: str) -> pd.DataFrame:
    """Per group and epoch: mean, min and max of `column` over the group's replicates
    (duplicates averaged first), n, how many replicates have that epoch, and the mean's 95%
    t-interval (ci_low, ci_high; NaN where n < 2)."""
    curves = collection.curves
    if column not in curves:
        return pd.DataFrame(columns=["group", "epoch", "mean", "min", "max", "n", "ci_low", "ci_high"])
    runs = collection.runs
    group_of = dict(zip(runs["run_dir"], group_labels(runs, keys)))
    replicate_of = dict(zip(runs["run_dir"], replicate_ids(runs, collection.config_keys, keys)))
    joined = curves[["run_dir", "epoch", column]].assign(group=curves["run_dir"].map(group_of),
                                                         replicate=curves["run_dir"].map(replicate_of))
    per_replicate = joined.groupby(["group", "replicate", "epoch"], sort=False)[column].mean()
    by_epoch = per_replicate.groupby(level=["group", "epoch"], sort=True)
    table = by_epoch.agg(["mean", "min", "max", "count"]).rename(columns={"count": "n"})
    repeated = table.index[table["n"] > 1]  # one replicate has no interval: skip describe's work
    intervals = {index: describe(by_epoch.get_group(index)) for index in repeated}
    table["ci_low"] = [intervals[i]["ci_low"] if i in intervals else math.nan for i in table.index]
    table["ci_high"] = [intervals[i]["ci_high"] if i in intervals else math.nan for i in table.index]
    return table.reset_index()
