"""How long `optlab report` takes to read run folders.

Writes N synthetic run folders (a full-size config.yaml, summary.json and a metrics.csv of
E epochs, as optlab train writes them) to a temporary folder, then times optlab.report.load
and the aggregation over them, and prints the seconds per run.

    python bench/report_load.py [--runs 1000] [--epochs 20]

Measured on the shared 2-core dev box (load ~5 from other jobs): see the report for numbers.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import yaml

HEADER = "epoch,step,lr,batch_size,train_loss,train_acc,val_loss,val_acc,grad_norm,epoch_time_s,samples_per_s\n"


def synthetic_config(i: int) -> dict:
    optimizer = ["sgd", "adam", "adamw"][i % 3]
    return {
        "data": {"name": "digits"}, "model": {"name": "mlp", "depth": 2, "width": 128, "dropout": 0.0},
        "init": {"name": "default", "bias": {"name": "default"}}, "norm": {"name": ["none", "batch"][i % 2]},
        "activation": {"name": "relu"},
        "optimizer": {"name": optimizer, "lr": 10 ** random.uniform(-4, 0), "betas": [0.9, 0.999], "eps": 1e-8,
                      "weight_decay": 0.0},
        "schedule": {"name": "constant", "warmup_epochs": 0, "interval": "step"},
        "batch": {"name": "fixed", "size": 64}, "augment": {"none": {}},
        "regularize": {"l1": 0.0, "l2": 0.0, "clip_norm": None, "clip_value": None, "label_smoothing": 0.0},
        "trainer": {"epochs": 20, "seed": i % 5, "device": "cpu", "val_fraction": 0.2, "eval_batch_size": 1024,
                    "progress": False, "log_every": 50, "precision": "32", "name": f"bench-{i}", "out_dir": "outputs"},
    }


def write_runs(root: Path, runs: int, epochs: int) -> None:
    for i in range(runs):
        folder = root / f"run-{i:05d}"
        folder.mkdir()
        (folder / "config.yaml").write_text(yaml.safe_dump(synthetic_config(i), sort_keys=False))
        accs = [min(0.99, 0.5 + 0.03 * e + random.gauss(0, 0.01)) for e in range(epochs)]
        rows = [f"{e},{23 * (e + 1)},0.01,64,{1 - a!r},{a!r},{1 - a!r},{a!r},1.0,0.1,3000.0\n" for e, a in enumerate(accs)]
        (folder / "metrics.csv").write_text(HEADER + "".join(rows))
        summary = {"status": "completed" if i % 20 else "diverged", "seed": i % 5, "device": "cpu",
                   "epochs_done": epochs, "best_val_acc": max(accs), "final_val_acc": accs[-1],
                   "final_val_loss": 1 - accs[-1], "best_val_loss": 1 - max(accs), "wall_time_s": 12.5}
        (folder / "summary.json").write_text(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    from optlab import report

    with tempfile.TemporaryDirectory() as tmp:
        write_runs(Path(tmp), args.runs, args.epochs)
        start = time.perf_counter()
        collection = report.load([Path(tmp)])
        loaded = time.perf_counter() - start
        metric = report.resolve_metric("val_acc", collection)
        table = report.aggregate(collection, ["optimizer", "norm"], metric, target=0.9)
        report.group_curves(collection, ["optimizer", "norm"], "val_acc")
        total = time.perf_counter() - start
    assert len(collection.runs) == args.runs and not collection.skipped, "every synthetic run must load"
    print(f"loaded {args.runs} runs ({args.epochs} epochs each) in {loaded:.2f} s: {1000 * loaded / args.runs:.2f} ms per run")
    print(f"load + aggregate ({len(table)} groups) + curves: {total:.2f} s in total")


if __name__ == "__main__":
    main()
