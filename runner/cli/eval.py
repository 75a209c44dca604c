"""`optlab eval RUN [--split val|test] [--data OVERRIDES...]`: a run's best model (model.pt) on a
split of its data, or on all of another dataset whose inputs have the same shape."""
from __future__ import annotations

import json
from pathlib import Path

from optlab.cli.display import with_examples


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a run's best model (model.pt) on its test or validation split, "
                                           "or on other data",
                              description="Evaluate a completed run's model.pt (its best validation epoch) on the "
                                          "run's test or validation split, drawn again from its seed, or on every "
                                          "sample of other data of the same shape.",
                              **with_examples(("optlab eval outputs/runs/RUN", "its test split"),
                                              ("optlab eval outputs/runs/RUN --split val", "its validation split"),
                                              ("optlab eval outputs/runs/RUN --data data=npz data.path=more.npz",
                                               "every sample of other data")))
    p.add_argument("run", metavar="RUN", help="a completed run folder (it has model.pt)")
    p.add_argument("--split", default="test", help="val or test (default test)")
    p.add_argument("--data", nargs="+", metavar="OVERRIDE",
                   help="other data instead of a split: data overrides as for `optlab train` (data=npz data.path=F)")
    p.add_argument("--device", help="where to evaluate (default: the run's trainer.device, or the CPU where "
                                    "this machine lacks it)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    p.add_argument("--config-dir", metavar="DIR", help="extra config folder, as for `optlab train`")
    p.set_defaults(handler=run)


def run(args) -> int:
    from optlab.optim.regularize import loss_fn
    from optlab.training.build import make_autocast
    from optlab.training.export import check_split, read_model_file, rebuild_model
    from optlab.training.engine import evaluate

    run_dir = Path(args.run)
    split = check_split(args.split)
    saved = read_model_file(run_dir)
    t = saved["config"]["trainer"]
    device = _device(args.device, str(t["device"]))
    model = rebuild_model(run_dir, saved, device)
    x, y, what = _inputs(args, run_dir, saved, split)
    loss, acc = evaluate(model, x, y, loss_fn(saved["task"], saved["config"]), saved["task"],
                         int(t["eval_batch_size"]), make_autocast(device, str(t["precision"])))
    result = {"run": str(run_dir), "data": what, "n": len(x), "loss": loss, "acc": acc}
    _show(result, args.format)
    return 0


def _device(requested: str | None, run_device: str):
    """--device, else the run's device where this machine has it, else the CPU."""
    from optlab.errors import ConfigError
    from optlab.training.build import resolve_device

    if requested:
        return resolve_device(requested)
    try:
        return resolve_device(run_device)
    except ConfigError:
        return resolve_device("cpu")


def _inputs(args, run_dir: Path, saved: dict, split: str):
    from optlab.training.export import other_data, split_data

    if not args.data:
        x, y = split_data(run_dir, saved, split)
        return x, y, split
    from optlab.config.compose import as_plain, compose
    from optlab.errors import ConfigError

    bad = [o for o in args.data if not o.lstrip("+~").startswith("data")]
    if bad:
        raise ConfigError(f"--data {bad[0]}: only data overrides (data=NAME, data.KEY=VALUE) choose other data")
    data_cfg = as_plain(compose(args.data, args.config_dir)["data"])
    x, y = other_data(data_cfg, saved, int(saved["config"]["trainer"]["seed"]))
    return x, y, " ".join(args.data)


def _show(result: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model.pt on {result['data']}")
    for column in ("n", "loss", "acc"):
        table.add_column(column, justify="right")
    acc = "" if result["acc"] is None else f"{result['acc']:.4f}"
    table.add_row(str(result["n"]), f"{result['loss']:.4f}", acc)
    Console().print(table)
    print(f"run: {result['run']}")  # a line of its own: a caption would break the path at the table's width
