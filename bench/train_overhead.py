"""optlab's training loop against a plain hand-written PyTorch loop doing the same work.

Both runs start from the same model init (same seed, same init code), train on the same
split in the same batch order (an on-device permutation from the same generator seed)
with the same optimizer, accumulate train loss/accuracy on the device, read them once
per epoch and evaluate on the validation split after each epoch. optlab also writes its
metrics row every epoch and its checkpoints: that is part of what it costs.

optlab's steps update with its functional optimizers (optlab.optim.functional: torch.optim's
arithmetic, bitwise, without torch.optim's per-call profiler range and hook walk) and clear
gradients without zero_grad's profiler range (clear_gradients). A textbook loop pays for
both, so a third loop, `plain+trims`, is the plain loop with those two swapped in: optlab's
ratio to it is the cost of optlab's own bookkeeping alone.

Throughput is training samples per second between the end of the first epoch and the end
of the last (set-up and first-epoch warm-up excluded). The loops alternate, in
ABBA order, for several repeats after one untimed warm-up round; the ratio reported is the
median of the per-pair ratios optlab/plain. Where PyTorch Lightning is installed, a
LightningModule doing the same steps joins the rotation (its batches come from the same
on-device permutation, handed to Lightning as a plain iterable) and its ratio to the plain
loop is printed too. The runs must also agree on every epoch's
validation loss, which shows they did the same computation.

Timing on a shared VM drifts by up to 30% over seconds, so a second, steadier ratio is
measured too: one long run in which an optlab epoch and a plain epoch alternate (the plain
loop runs inside optlab's per-epoch hook); its ratio is the median per-epoch ratio, and the
median over `--repeats` such runs is reported.

    python bench/train_overhead.py                 # both cases, 5 pairs each
    python bench/train_overhead.py --case mlp-digits --repeats 9 --threads 2
"""
from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from optlab.config.compose import compose
from optlab.optim.optimizers import build_optimizer, clear_gradients
from optlab.training.build import build
from optlab.training.api import train

PLAIN_LOOPS = {"plain": False, "plain+trims": True}  # name -> with optlab's step trims
INTERLEAVED_EPOCHS = {"mlp-digits": 150, "cnn-shapes": 16}
CASES = {  # name -> Hydra overrides
    "mlp-digits": ["data=digits", "model=mlp", "optimizer=sgd", "batch.size=64", "trainer.epochs=12"],
    "cnn-shapes": ["data=shapes", "data.n_samples=1000", "model=cnn", "model.channels=8", "model.depth=3",
                   "optimizer=sgd", "batch.size=64", "trainer.epochs=4"],
}


def optlab_run(cfg, out_dir: Path) -> tuple[list[float], list[float]]:
    """(end-of-epoch times, val losses) of optlab's own loop."""
    times, val_losses = [], []

    def on_epoch(epoch: int, row: dict) -> None:
        times.append(time.perf_counter())
        val_losses.append(row["val_loss"])

    train(cfg, run_root=out_dir, on_epoch=on_epoch)
    return times, val_losses


def plain_run(cfg, direct: bool = False) -> tuple[list[float], list[float]]:
    """(end-of-epoch times, val losses) of a textbook PyTorch loop on the same model and data."""
    epochs, times, val_losses = plain_epochs(cfg, direct), [], []
    for _ in range(int(cfg.trainer.epochs)):
        val_losses.append(next(epochs))
        times.append(time.perf_counter())
    return times, val_losses


@torch.no_grad()
def validate(model, x, y, batch_size: int) -> float:
    model.eval()
    total, correct = torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(x), batch_size):
        out = model(x[start:start + batch_size])
        total += F.cross_entropy(out, y[start:start + batch_size]) * len(out)
        correct += (out.argmax(dim=1) == y[start:start + batch_size]).sum()
    _acc = correct.item() / len(x)
    return total.item() / len(x)


def same_start(cfg):
    """(config, device, seed, data on the device, model) exactly as optlab's run starts them:
    optlab's own build(), whose optimizer and loss the plain loops leave aside."""
    parts = build(cfg)
    return parts.cfg, parts.device, parts.seed, parts.data, parts.model


def plain_epochs(cfg, direct: bool = False):
    """The plain loop as a generator: each next() trains and validates one epoch. `direct`:
    with optlab's two step trims (its functional optimizer instead of torch.optim.SGD,
    gradients cleared without zero_grad's profiler range), to show how much of the ratio
    they make."""
    c, device, seed, data, model = same_start(cfg)
    t, o = c["trainer"], c["optimizer"]
    if direct:  # optlab's own optimizer: the same arithmetic as torch.optim.SGD, bitwise
        optimizer = build_optimizer(model.parameters(), o)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=float(o["lr"]), weight_decay=float(o["weight_decay"]))
    step, params = optimizer.step, list(model.parameters())
    order = torch.Generator(device=device).manual_seed(seed + 1)
    batch_size, n = int(c["batch"]["size"]), len(data.x_train)
    while True:
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        perm = torch.randperm(n, generator=order, device=device)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb, yb = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            if direct:
                clear_gradients(params)
            else:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            step()
            loss_sum += loss.detach() * len(xb)
            correct += (out.argmax(dim=1) == yb).sum()
        _train_loss, _train_acc = loss_sum.item() / n, correct.item() / n
        yield validate(model, data.x_val, data.y_val, int(t["eval_batch_size"]))


class PermutedBatches:
    """A re-iterable of (x, y) index-select batches: a new on-device permutation per pass,
    drawn from `order` exactly as the plain loop draws its own (in order when None)."""

    def __init__(self, x, y, batch_size: int, order: torch.Generator | None):
        self.x, self.y, self.batch_size, self.order = x, y, batch_size, order

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        if self.order is None:
            for start in range(0, len(self.x), self.batch_size):
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            return
        perm = torch.randperm(len(self.x), generator=self.order, device=self.x.device)
        for start in range(0, len(self.x), self.batch_size):
            idx = perm[start:start + self.batch_size]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


def lightning_module():
    """None when Lightning is not installed, else the installed package's module."""
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def lightning_run(cfg) -> tuple[list[float], list[float]]:
    """(end-of-epoch times, val losses) of the same training as a LightningModule + Trainer."""
    pl = lightning_module()
    c, device, seed, data, network = same_start(cfg)
    t, o = c["trainer"], c["optimizer"]
    times, val_losses = [], []

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.network = network
            self.sums: dict[str, list[torch.Tensor]] = {}

        def reset(self, split: str) -> None:
            self.sums[split] = [torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)]

        def add(self, split: str, out, yb, loss) -> None:  # loss sum and correct count, on the device
            self.sums[split][0] += loss.detach() * len(yb)
            self.sums[split][1] += (out.argmax(dim=1) == yb).sum()

        def on_train_epoch_start(self):
            self.reset("train")

        def training_step(self, batch, index):
            xb, yb = batch
            out = self.network(xb)
            loss = F.cross_entropy(out, yb)
            self.add("train", out, yb, loss)
            return loss

        def on_validation_epoch_start(self):
            self.reset("val")

        def validation_step(self, batch, index):
            xb, yb = batch
            out = self.network(xb)
            self.add("val", out, yb, F.cross_entropy(out, yb))

        def on_validation_epoch_end(self):
            total, correct = self.sums["val"]
            _acc = correct.item() / len(data.x_val)
            val_losses.append(total.item() / len(data.x_val))

        def on_train_epoch_end(self):  # Lightning validates before this hook
            total, correct = self.sums["train"]
            _train_loss, _train_acc = total.item() / len(data.x_train), correct.item() / len(data.x_train)
            times.append(time.perf_counter())

        def configure_optimizers(self):
            return torch.optim.SGD(self.network.parameters(), lr=float(o["lr"]), weight_decay=float(o["weight_decay"]))

    order = torch.Generator(device=device).manual_seed(seed + 1)
    train_batches = PermutedBatches(data.x_train, data.y_train, int(c["batch"]["size"]), order)
    val_batches = PermutedBatches(data.x_val, data.y_val, int(t["eval_batch_size"]), None)
    trainer = pl.Trainer(max_epochs=int(t["epochs"]), accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Module(), train_dataloaders=train_batches, val_dataloaders=val_batches)
    return times, val_losses


def quiet_lightning() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="pytorch_lightning")


def interleaved_ratio(cfg, out_dir: Path) -> dict[str, float]:
    """One optlab epoch, then one epoch of each plain loop (textbook, and with optlab's step
    trims), alternating for the whole run, so all see the same machine load (timing on shared
    VMs drifts by 30% over seconds). Returns, per plain loop, the median over epochs of plain
    epoch time / optlab epoch time (optlab's epoch runs from the end of the last plain epoch
    to the end of its own metrics row)."""
    plains = {name: plain_epochs(cfg, direct) for name, direct in PLAIN_LOOPS.items()}
    optlab_times, mark = [], [None]
    plain_times: dict[str, list[float]] = {name: [] for name in plains}

    def on_epoch(epoch: int, row: dict) -> None:
        now = time.perf_counter()
        if mark[0] is not None:
            optlab_times.append(now - mark[0])
        for name, epochs in plains.items():
            start = time.perf_counter()
            next(epochs)
            plain_times[name].append(time.perf_counter() - start)
        mark[0] = time.perf_counter()

    train(cfg, run_root=out_dir, on_epoch=on_epoch)
    return {name: statistics.median(p / o for p, o in zip(times[1:], optlab_times))  # epoch 0 is warm-up
            for name, times in plain_times.items()}


def samples_per_s(times: list[float], n_train: int) -> float:
    return n_train * (len(times) - 1) / (times[-1] - times[0])


def bench_case(name: str, repeats: int, device: str, out_dir: Path, with_lightning: bool) -> dict:
    cfg = compose([*CASES[name], "trainer.progress=false", f"trainer.device={device}", f"trainer.out_dir={out_dir}"])
    n_train = len(build(cfg).batches)
    run = {"optlab": lambda: optlab_run(cfg, out_dir / name), "plain": lambda: plain_run(cfg),
           "plain+trims": lambda: plain_run(cfg, direct=True)}
    if with_lightning:
        run["lightning"] = lambda: lightning_run(cfg)
    for loop in run.values():  # warm-up round, not timed
        loop()
    speeds: dict[str, list[float]] = {k: [] for k in run}
    worst_gap = 0.0
    for i in range(repeats):
        results = {}
        for which in (list(run) if i % 2 == 0 else list(reversed(run))):
            times, val_losses = run[which]()
            speeds[which].append(samples_per_s(times, n_train))
            results[which] = val_losses
        worst_gap = max(worst_gap, *(abs(a - b) for other in results.values() if other is not results["plain"]
                                     for a, b in zip(other, results["plain"], strict=True)))
    ratios = {k: [a / b for a, b in zip(speeds[k], speeds["plain"])] for k in run if k != "plain"}
    long_cfg = compose([*CASES[name], "trainer.progress=false", f"trainer.device={device}",
                        f"trainer.out_dir={out_dir}", f"trainer.epochs={INTERLEAVED_EPOCHS[name]}"])
    interleaved = [interleaved_ratio(long_cfg, out_dir / name) for _ in range(repeats)]
    return {"case": name, "speeds": {k: statistics.median(v) for k, v in speeds.items()}, "ratios": ratios,
            "interleaved": {k: statistics.median(r[k] for r in interleaved) for k in PLAIN_LOOPS},
            "val_loss_gap": worst_gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per case (each loop once per round)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps shared machines quiet)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-lightning", action="store_true", help="leave PyTorch Lightning out even if installed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with_lightning = not args.no_lightning and lightning_module() is not None
    if with_lightning:
        quiet_lightning()
    cases = list(CASES) if args.case == "all" else [args.case]
    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__} repeats={args.repeats} "
          f"lightning={'yes' if with_lightning else 'not installed or off'}")
    print(f"{'case':<12} {'loop':<12} {'samples/s':>10} {'vs plain (median)':>18}  per-round ratios")
    with tempfile.TemporaryDirectory(prefix="optlab-bench-") as tmp:
        for name in cases:
            r = bench_case(name, args.repeats, args.device, Path(tmp), with_lightning)
            for loop, speed in r["speeds"].items():
                ratios = r["ratios"].get(loop)
                vs = f"{statistics.median(ratios):>18.3f}  " + " ".join(f"{x:.3f}" for x in ratios) if ratios else f"{'1':>18}"
                print(f"{name:<12} {loop:<12} {speed:>10.0f} {vs}", flush=True)
            for plain, ratio in r["interleaved"].items():
                print(f"{name:<12} optlab/{plain} epoch-interleaved (median of {args.repeats} runs): {ratio:.3f}", flush=True)
            print(f"{name:<12} max val_loss gap between loops: {r['val_loss_gap']:.1e}", flush=True)


if __name__ == "__main__":
    main()
