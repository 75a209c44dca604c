"""The stacked engine trains each member as its solo run would: the same metrics to float32
rounding, members that end alone, run folders a solo run resumes, a signal's checkpoints a
population resumes from, the compiled step, grids packed into populations."""
from __future__ import annotations

import csv
import math
import statistics

import pytest
import torch

from optlab.config.compose import compose
from optlab.optim.optimizers import OPTIMIZERS
from optlab.training import build as build_module
from optlab.training.api import RunRequest, train, train_many

SMALL = ["model.width=32", "trainer.progress=false"]
METRICS = ("train_loss", "val_loss", "val_acc")
VAL_SIZE = 359  # digits: 1,797 samples, 20% held out (stratified)


def train_population(cfgs: list) -> list:
    """The configs trained as one population."""
    return train_many(cfgs, population=len(cfgs))


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def member_cfgs(tmp_path, size: int, *overrides: str, epochs: int = 1) -> list:
    """`size` configs of one structure: seeds 0.. and lrs around the optimizer's default."""
    base = [*SMALL, f"trainer.epochs={epochs}", f"trainer.out_dir={tmp_path}", *overrides]
    lr0 = float(compose(base).optimizer.lr)
    return [compose([*base, f"trainer.seed={k}", f"optimizer.lr={lr0 * (0.5 + 0.25 * k)!r}"]) for k in range(size)]


def relative_gaps(a: list[dict], b: list[dict], metrics=METRICS) -> list[float]:
    """Per epoch, the largest relative difference among the metrics."""
    return [max(abs(x[k] - y[k]) / max(abs(y[k]), 1e-12) for k in metrics if k in y) for x, y in zip(a, b, strict=True)]


LOSSES = ("train_loss", "val_loss")


def rounding_scale(solo: list[dict], nudged: list[dict], val_size: int) -> tuple[float, int]:
    """How far float32 rounding alone moves these runs (solo runs, and the same runs with
    their initial weights one ulp larger): the largest relative loss change, and the most
    validation samples flipped (val_acc moves a whole sample at a time)."""
    loss = max(relative_gaps([n], [s], LOSSES)[0] for s, n in zip(solo, nudged))
    flips = max(round(abs(n.get("val_acc", 0) - s.get("val_acc", 0)) * val_size) for s, n in zip(solo, nudged))
    return loss, flips


def within_rounding(member: dict, solo: dict, scale: tuple[float, int], val_size: int) -> bool:
    """member ~ solo as closely as float32 rounding allows: the losses to a relative 1e-4
    (or 3x what rounding alone moves them), val_acc by at most 3x the samples rounding flips
    (at least 2). Adaptive optimizers with batch norm are the loose case: the bias before a
    norm gets gradients that are zero but for rounding, which Adam-like rules normalize into
    steps of size lr, so rounding alone moves such runs more."""
    loss_scale, flip_scale = scale
    if relative_gaps([member], [solo], LOSSES)[0] > max(1e-4, 3 * loss_scale):
        return False
    flips = round(abs(member.get("val_acc", 0) - solo.get("val_acc", 0)) * val_size)
    return flips <= (0 if flip_scale is None else max(2, 3 * flip_scale))


@pytest.fixture
def one_ulp_off(monkeypatch):
    """Solo runs whose initial weights are one float32 ulp larger: what rounding alone does."""
    real = build_module.build_network

    def nudged(*args, **kwargs):
        model = real(*args, **kwargs)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))
        return model

    def solo(cfg):
        monkeypatch.setattr(build_module, "build_network", nudged)
        try:
            return rows(train(cfg).run_dir)
        finally:
            monkeypatch.setattr(build_module, "build_network", real)
    return solo


@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("schedule", ["step", "cosine"])
@pytest.mark.parametrize("optimizer", [n for n in sorted(OPTIMIZERS.names()) if OPTIMIZERS.get(n).rule is not None])
def test_after_one_epoch_each_member_has_its_solo_metrics(tmp_path, one_ulp_off, optimizer, schedule, norm):
    """K=8, eight lrs and seeds: each member's first-epoch metrics equal its solo run's to a
    relative 1e-4, or within what one ulp of its initial weights changes (val_acc moves in
    steps of one sample: where rounding alone flips a sample, so may the population)."""
    cfgs = member_cfgs(tmp_path, 8, f"optimizer={optimizer}", f"schedule={schedule}", f"norm={norm}",
                       "schedule.step_size=1" if schedule == "step" else "schedule.min_lr=0.0")
    members = [rows(r.run_dir)[0] for r in train_population(cfgs)]
    solo = [rows(train(cfg).run_dir)[0] for cfg in cfgs]
    strict = (0.0, None)  # equal to 1e-4 and no sample flipped: rounding's scale is measured only when needed
    if all(within_rounding(m, s, strict, VAL_SIZE) for m, s in zip(members, solo)):
        return
    scale = rounding_scale(solo, [one_ulp_off(cfg)[0] for cfg in cfgs], VAL_SIZE)
    for k in range(len(cfgs)):
        assert within_rounding(members[k], solo[k], scale, VAL_SIZE), (k, members[k], solo[k], scale)


@pytest.mark.parametrize("overrides", [
    ("optimizer=momentum", "norm=batch", "schedule=cosine"),
    ("optimizer=adam", "schedule=step", "schedule.step_size=2"),
    ("optimizer=nesterov", "regularize.clip_norm=0.5", "regularize.l2=0.001", "regularize.label_smoothing=0.1"),
])
def test_over_five_epochs_the_gap_stays_within_float32_rounding(tmp_path, one_ulp_off, overrides):
    cfgs = member_cfgs(tmp_path, 4, *overrides, epochs=5)
    members = [rows(r.run_dir) for r in train_population(cfgs)]
    solo = [rows(train(cfg).run_dir) for cfg in cfgs]
    nudged = [one_ulp_off(cfg) for cfg in cfgs]
    for epoch in range(5):
        scale = rounding_scale([s[epoch] for s in solo], [n[epoch] for n in nudged], VAL_SIZE)
        for k in range(len(cfgs)):
            assert within_rounding(members[k][epoch], solo[k][epoch], scale, VAL_SIZE), (k, epoch)


def test_dropout_members_are_their_solo_runs_in_distribution(tmp_path):
    """Dropout masks differ from solo's: the members' mean lies in the solo runs' 95% interval."""
    from optlab.report.stats import describe

    cfgs = [compose([*SMALL, "trainer.epochs=3", f"trainer.out_dir={tmp_path}", "model.dropout=0.3",
                     f"trainer.seed={k}"]) for k in range(8)]
    members = [r.summary["final_val_loss"] for r in train_population(cfgs)]
    solo = describe([train(cfg).summary["final_val_loss"] for cfg in cfgs])
    assert solo["ci_low"] <= statistics.mean(members) <= solo["ci_high"]


def test_a_member_that_diverges_ends_alone_and_the_others_do_not_notice(tmp_path):
    cfgs = member_cfgs(tmp_path, 4, "optimizer=sgd", epochs=2)
    exploding = compose([*SMALL, "trainer.epochs=2", f"trainer.out_dir={tmp_path}", "optimizer.lr=1e6",
                         "trainer.seed=9"])
    with_it = train_population(cfgs[:2] + [exploding] + cfgs[2:])
    without = train_population(cfgs)
    assert [r.status for r in with_it] == ["completed", "completed", "diverged", "completed", "completed"]
    assert "loss became nan" in with_it[2].summary["reason"]
    timing = ("epoch_time_s", "samples_per_s")
    strip = lambda table: [{k: v for k, v in r.items() if k not in timing} for r in table]  # noqa: E731
    assert all(strip(rows(a.run_dir)) == strip(rows(b.run_dir))
               for a, b in zip(with_it[:2] + with_it[3:], without))


def test_each_member_is_an_ordinary_run_folder_a_solo_run_resumes(tmp_path):
    """A member pruned after its first epoch leaves a checkpoint; `optlab train --resume`
    continues it solo to the metrics its solo run has (to float32 rounding)."""
    from optlab.errors import Pruned

    cfgs = member_cfgs(tmp_path, 3, "optimizer=momentum", "norm=batch", epochs=3)

    def prune_after_the_first_epoch(epoch, row):
        if epoch == 0:
            raise Pruned("stop here")

    results = train_many([cfgs[0], RunRequest(cfgs[1], on_epoch=prune_after_the_first_epoch), cfgs[2]], population=3)
    pruned = results[1]
    assert pruned.status == "pruned" and len(rows(pruned.run_dir)) == 1
    summary = pruned.summary
    assert summary["execution"] == "population" and summary["population"] == 3
    assert {"config.yaml", "metrics.csv", "summary.json", "checkpoint.pt"} <= {p.name for p in pruned.run_dir.iterdir()}
    resumed = train(cfgs[1], resume_dir=pruned.run_dir)
    alone = train(cfgs[1])
    assert resumed.status == "completed"
    assert max(relative_gaps(rows(pruned.run_dir), rows(alone.run_dir))) <= 1e-4


def test_a_grid_packs_into_populations_and_says_which_runs_train_alone(optlab, tmp_path):
    result = optlab("train", "-m", "optimizer.lr=0.05,0.1", "trainer.seed=0,1", "trainer.diagnostics=false,true",
                    "trainer.epochs=1", *SMALL, "--population", "4")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("trains alone: trainer.diagnostics=true") == 4
    folders = [line for line in result.stdout.splitlines() if "/multirun/" in line]
    summaries = [(tmp_path / f / "summary.json").read_text() for f in folders[:-1]]
    assert sum('"execution": "population"' in s for s in summaries) == 4


def test_population_needs_a_grid(optlab):
    result = optlab("train", "--population", "4")
    assert result.returncode == 2 and "use it with -m" in result.stderr


def test_a_signal_checkpoints_every_member_at_its_step_and_they_resume_as_the_uninterrupted_population(
        tmp_path, monkeypatch):
    """SIGINT at step 30 (epoch 1, batch 7): each member's checkpoint records that step and
    its running sums; resumed together, the members end with the uninterrupted population's
    rows, to the last bit (times aside)."""
    from optlab import faults
    from optlab.errors import Interrupted
    from optlab.runs.folder import load_checkpoint

    cfgs = member_cfgs(tmp_path, 3, "optimizer=momentum", "norm=batch", "trainer.log_every=5", epochs=3)
    monkeypatch.setattr(faults, "_plan", {"train.step": (30, "sigint")})
    monkeypatch.setattr(faults, "_hits", {})
    with pytest.raises(Interrupted):
        train_many(cfgs, population=3)
    monkeypatch.setattr(faults, "_plan", {})
    stopped = sorted(p for p in tmp_path.glob("runs/*") if p.is_dir())
    assert len(stopped) == 3
    for folder in stopped:
        checkpoint = load_checkpoint(folder / "checkpoint.pt")
        assert (checkpoint["epoch"], checkpoint["mid_epoch"]["batches_done"]) == (0, 30 - 23)
        assert len(rows(folder)) == 1
    resumed = train_many([RunRequest(cfg, resume_dir=folder) for cfg, folder in zip(cfgs, stopped)], population=3)
    straight = train_population(cfgs)
    timing = ("epoch_time_s", "samples_per_s")
    strip = lambda table: [{k: v for k, v in r.items() if k not in timing} for r in table]  # noqa: E731
    assert [r.status for r in resumed] == ["completed"] * 3
    assert [strip(rows(r.run_dir)) for r in resumed] == [strip(rows(r.run_dir)) for r in straight]


@pytest.mark.parametrize("overrides", [("norm=weight",), ("norm=batch", "regularize.label_smoothing=0.1"),
                                       ("data=shapes", "data.n_samples=64", "model=resnet", "norm=group")])
def test_the_stacked_step_has_no_vmap_fallback(tmp_path, overrides):
    """Every op of the step has a vmap batching rule: none runs member by member (torch warns
    when one does; cross-entropy, torch's weight norm and norm_except_dim did)."""
    import warnings

    torch._C._functorch._set_vmap_fallback_warning_enabled(True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = train_population(member_cfgs(tmp_path, 2, *overrides))
    finally:
        torch._C._functorch._set_vmap_fallback_warning_enabled(False)
    assert [r.status for r in results] == ["completed"] * 2
    assert [str(w.message)[:120] for w in caught if "batching rule" in str(w.message)] == []


@pytest.mark.slow  # the first compile of a structure takes tens of seconds (inductor's cache spares later ones)
def test_a_compiled_population_equals_an_uncompiled_one_and_compiles_once(tmp_path, one_ulp_off):
    """trainer.compile=true: the same metrics as the eager population to float32 rounding;
    one compiled step for the structure (a graph for a full batch, one for the epoch's shorter
    last, one for the validation pass), not one per member, epoch or refilled slot."""
    from torch._dynamo.utils import counters

    setting = ("optimizer=momentum", "norm=batch", "regularize.clip_norm=0.5", "regularize.l2=0.001", "model.depth=1")
    cfgs = member_cfgs(tmp_path, 3, *setting, "trainer.compile=false", epochs=2)
    eager = [rows(r.run_dir) for r in train_many(cfgs, population=2)]  # three runs, two slots: one is refilled
    counters.clear()
    compiled = train_many(member_cfgs(tmp_path, 3, *setting, "trainer.compile=true", epochs=2), population=2)
    assert counters["stats"]["unique_graphs"] <= 3
    solo = [rows(train(cfg).run_dir) for cfg in cfgs]
    nudged = [one_ulp_off(cfg) for cfg in cfgs]
    for epoch in range(2):  # each within rounding of its solo run, so of each other within twice that
        loss_scale, flips = rounding_scale([s[epoch] for s in solo], [n[epoch] for n in nudged], VAL_SIZE)
        for k, result in enumerate(compiled):
            assert within_rounding(rows(result.run_dir)[epoch], solo[k][epoch], (loss_scale, flips), VAL_SIZE), \
                (k, epoch, rows(result.run_dir)[epoch], solo[k][epoch])
            assert within_rounding(rows(result.run_dir)[epoch], eager[k][epoch], (2 * loss_scale, 2 * flips),
                                   VAL_SIZE), (k, epoch)


def test_compile_auto_compiles_when_the_work_left_pays_for_it_and_counts_a_cached_step_warm(tmp_path, monkeypatch):
    from optlab.training.stacked import WARM_COMPILE_S, compiled_before, note_compiled, worth_compiling

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert not worth_compiling(0.1, 100)  # 10 s of eager epochs, of which compiling saves 2.3: not a cold compile's 40
    assert worth_compiling(1.0, 200)
    assert worth_compiling(0.1, 400, WARM_COMPILE_S)
    assert not compiled_before("structure", 16)
    note_compiled("structure", 16)
    assert compiled_before("structure", 16) and not compiled_before("structure", 4)  # another K: other shapes
