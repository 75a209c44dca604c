"""Curriculum runs: difficulty is each example's loss under the reference model; the steps of
each epoch follow the pacing; resumes rank and order exactly as the uninterrupted run."""
import csv
import math

import pytest
import torch
import torch.nn.functional as F
from testkit import sigterm_at_step

from optlab.data.curriculum import admitted_count
from optlab.errors import ConfigError, Interrupted
from optlab.training.build import build
from optlab.training.difficulty import example_losses, read_scores
from optlab.training.api import train
from optlab.training.grouping import why_solo

CURRICULUM = ("data.order=curriculum", "data.pacing.start=0.25", "data.pacing.epochs=2", "batch.size=50")
TIMING = {"epoch_time_s", "samples_per_s"}


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def test_example_losses_are_each_examples_plain_loss_in_eval_mode():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5)).train()
    x, y = torch.randn(10, 3), torch.randint(0, 4, (10,))
    expected = [F.cross_entropy(model[0](x[i:i + 1]), y[i:i + 1]).item() for i in range(10)]
    assert example_losses(model, x, y, "classification", batch_size=3).tolist() == pytest.approx(expected, rel=1e-6)
    assert model.training  # left in the mode it was in
    target = torch.randn(10, 4)
    squared = [((model[0](x[i]) - target[i]) ** 2).mean().item() for i in range(10)]
    assert example_losses(model, x, target, "regression").tolist() == pytest.approx(squared, rel=1e-6)


def test_curriculum_trains_on_the_easiest_examples_under_the_initial_model(compose_cfg):
    cfg = compose_cfg(*CURRICULUM, "trainer.epochs=3")
    parts = build(cfg)
    n = len(parts.data.x_train)
    scores = example_losses(parts.model, parts.data.x_train, parts.data.y_train, "classification")
    assert torch.equal(parts.batches.pacing.scores, scores)
    counts = [admitted_count(n, 0.25, 2, e) for e in range(3)]
    assert counts == [math.ceil(n / 4), math.ceil(n * 5 / 8), n]
    easiest = set(torch.sort(scores, stable=True).indices[:counts[0]].tolist())
    assert set(parts.batches.pacing.pool(0).tolist()) == easiest
    assert max(scores[sorted(easiest)]) <= min(scores[sorted(set(range(n)) - easiest)])
    run = train(cfg).run_dir
    steps = [int(r["step"]) for r in rows(run)]
    per_epoch = [math.ceil(c / 50) for c in counts]
    assert steps == [sum(per_epoch[:e + 1]) for e in range(3)]
    assert torch.equal(read_scores(run), scores)  # difficulty.csv holds each example's score exactly


def test_a_full_batch_is_the_epochs_pool(compose_cfg):
    cfg = compose_cfg("data.order=anti_curriculum", "data.pacing.start=0.5", "data.pacing.epochs=2", "batch=full",
                      "trainer.epochs=3")
    run = train(cfg).run_dir
    n = len(read_scores(run))
    assert [(int(r["step"]), int(r["batch_size"])) for r in rows(run)] == \
           [(1, math.ceil(n / 2)), (2, math.ceil(n * 3 / 4)), (3, n)]


def test_schedules_and_diagnostics_count_each_epochs_own_steps(compose_cfg):
    cfg = compose_cfg(*CURRICULUM, "schedule=cosine", "optimizer.lr=0.1", "trainer.epochs=3",
                      "trainer.diagnostics=true")
    run = train(cfg).run_dir
    n = len(read_scores(run))
    steps = [math.ceil(admitted_count(n, 0.25, 2, e) / 50) for e in range(3)]
    table = rows(run)
    for epoch, r in enumerate(table):  # lr: the epoch's last step, at progress epoch + (steps - 1) / steps
        t = epoch + (steps[epoch] - 1) / steps[epoch]
        assert float(r["lr"]) == pytest.approx(0.1 * (1 + math.cos(math.pi * t / 3)) / 2, rel=1e-12)
    with open(run / "layers.csv") as f:
        recorded = {(int(r["epoch"]), int(r["step"])) for r in csv.DictReader(f)}
    assert recorded == {(-1, 0)} | {(e, int(r["step"])) for e, r in enumerate(table)}  # each epoch's last step


def test_random_order_is_unchanged_and_writes_no_scores(compose_cfg):
    run = train(compose_cfg("data.order=random")).run_dir
    plain = train(compose_cfg()).run_dir
    assert rows(run) == rows(plain) and not (run / "difficulty.csv").exists()


def test_a_resumed_curriculum_run_equals_an_uninterrupted_one(compose_cfg, monkeypatch):

    overrides = (*CURRICULUM, "trainer.epochs=3", "trainer.log_every=1", "model.dropout=0.2")
    full = rows(train(compose_cfg(*overrides)).run_dir)
    stop_at_call = int(full[0]["step"]) + 3  # inside epoch 1, whose pool is larger than epoch 0's
    restore = sigterm_at_step(monkeypatch, stop_at_call)
    with pytest.raises(Interrupted) as info:
        train(compose_cfg(*overrides))
    restore()
    assert rows(train(compose_cfg(*overrides), resume_dir=info.value.result.run_dir).run_dir) == full


def test_a_resume_ranks_by_the_scores_the_run_wrote(compose_cfg):
    cfg = compose_cfg(*CURRICULUM, "trainer.epochs=1", "trainer.checkpoint_every_s=0")
    run = train(cfg).run_dir
    n = len(read_scores(run))
    reversed_scores = torch.arange(n, 0, -1, dtype=torch.float32)  # as if the reference had changed
    (run / "difficulty.csv").write_text("index,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(reversed_scores.tolist())))
    from optlab.training.run_folder import RunFolder

    parts = build(compose_cfg(*CURRICULUM, "trainer.epochs=2"))
    RunFolder.open(parts, cfg, None, run)
    assert parts.batches.pacing.pool(0).tolist() == list(range(n - 1, n - 1 - parts.batches.size(0), -1))


@pytest.mark.parametrize("weights_file", ["model.pt", "checkpoint.pt"])
def test_difficulty_from_a_run_uses_that_runs_model(compose_cfg, weights_file):
    teacher_cfg = compose_cfg("trainer.epochs=2", "trainer.seed=5")  # its own split and standardization
    teacher = train(teacher_cfg).run_dir
    if not (teacher / weights_file).exists():
        pytest.skip(f"runs do not write {weights_file} here")
    for other in {"model.pt", "best.pt"} - {weights_file}:
        (teacher / other).unlink(missing_ok=True)  # so that the run's model is the one in weights_file
    saved = torch.load(teacher / weights_file, weights_only=False)
    reference = build(teacher_cfg)
    weights = saved["state_dict"] if weights_file == "model.pt" else saved["model"]
    reference.model.load_state_dict(weights)
    cfg = compose_cfg("data.order=anti_curriculum", f"data.difficulty_from={teacher}", "trainer.epochs=1")
    parts = build(cfg)
    assert not torch.equal(parts.data.mean, reference.data.mean)
    raw = parts.data.x_train * parts.data.std + parts.data.mean
    x = (raw - reference.data.mean) / reference.data.std  # as the teacher saw its inputs
    expected = example_losses(reference.model, x, parts.data.y_train, "classification")
    assert torch.allclose(parts.batches.pacing.scores, expected, rtol=1e-5, atol=1e-6)
    hardest = torch.sort(expected, descending=True, stable=True).indices[:parts.batches.size(0)]
    assert set(parts.batches.pacing.pool(0).tolist()) == set(hardest.tolist())


def test_a_damaged_scores_file_is_a_bad_run_folder(compose_cfg):
    from optlab.errors import DataError

    cfg = compose_cfg(*CURRICULUM, "trainer.epochs=1", "trainer.checkpoint_every_s=0")
    run = train(cfg).run_dir
    (run / "difficulty.csv").write_text("index,loss\n0,1.5\n")
    with pytest.raises(DataError, match=r"difficulty.csv: 1 scores for a training split of \d+ examples$"):
        train(compose_cfg(*CURRICULUM, "trainer.epochs=2"), resume_dir=run)
    (run / "difficulty.csv").write_text("index,loss\n0,easy\n")
    with pytest.raises(DataError, match=r"difficulty.csv: damaged \(ValueError"):
        train(compose_cfg(*CURRICULUM, "trainer.epochs=2"), resume_dir=run)


def test_difficulty_from_something_that_is_not_a_run_exits_2(compose_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"^data.difficulty_from=.*: not a run folder \(no config.yaml\)$"):
        build(compose_cfg("data.order=curriculum", f"data.difficulty_from={tmp_path}"))


def test_curriculum_runs_train_alone_in_a_population(compose_cfg):
    assert why_solo(compose_cfg("data.order=curriculum")) == \
        "data.order=curriculum admits one run's examples by its own difficulty"
    assert why_solo(compose_cfg()) is None


def test_difficulty_from_expands_the_home_folder(compose_cfg, monkeypatch):
    teacher = train(compose_cfg("trainer.epochs=1")).run_dir
    monkeypatch.setenv("HOME", str(teacher.parent))
    cfg = compose_cfg("data.order=curriculum", f"data.difficulty_from={teacher}", "trainer.epochs=1")
    expected = build(cfg).batches.pacing.scores
    cfg.data.difficulty_from = f"~/{teacher.name}"  # as init.from and the data paths take it
    assert torch.equal(build(cfg).batches.pacing.scores, expected)
