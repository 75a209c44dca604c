"""init.from: another run's weights where names and shapes fit, the configured init elsewhere;
and the transfer claim itself, on digits."""
import csv
import math

import pytest
import torch

from optlab.errors import ConfigError
from optlab.training.build import build
from optlab.training.api import train

SUBSET = "data.keep_classes=[0,1,2,3,4]"


def val_accs(run_dir) -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        return [float(r["val_acc"]) for r in csv.DictReader(f)]


def epochs_to(accs: list[float], target: float) -> float:
    """Epochs trained until val_acc first reaches target (inf: never)."""
    return next((i + 1 for i, acc in enumerate(accs) if acc >= target), math.inf)


@pytest.fixture
def source_run(compose_cfg):
    """A finished 10-class digits run (2 epochs)."""
    return train(compose_cfg("trainer.checkpoint_every_s=0")).run_dir


def test_only_the_head_is_reinitialized_for_a_new_class_count(compose_cfg, source_run, capsys):
    source = torch.load(source_run / "checkpoint.pt", weights_only=False)["model"]
    fine_tuned = build(compose_cfg(SUBSET, f"init.from={source_run}", "init.from_checkpoint=last")).model.state_dict()
    fresh = build(compose_cfg(SUBSET)).model.state_dict()  # the configured init, same seed
    assert fine_tuned["head.weight"].shape == (5, 128)
    for name, tensor in fine_tuned.items():
        expected = fresh[name] if name.startswith("head.") else source[name]
        assert torch.equal(tensor, expected), name
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (f"optlab: init.from={source_run} (checkpoint.pt): loaded 4 of 6 tensors; init=default kept "
                    f"for head.weight (5x128, source 10x128), head.bias (5, source 10)")


def test_the_default_is_the_best_validation_epochs_weights(compose_cfg, source_run):
    best = torch.load(source_run / "best.pt", weights_only=True)["state_dict"]
    loaded = build(compose_cfg(f"init.from={source_run}")).model.state_dict()
    assert best and all(torch.equal(loaded[k], best[k]) for k in best)


def test_batch_norm_buffers_come_along(compose_cfg):
    run_dir = train(compose_cfg("norm=batch", "trainer.checkpoint_every_s=0")).run_dir
    source = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    loaded = build(compose_cfg("norm=batch", f"init.from={run_dir}", "init.from_checkpoint=last")).model.state_dict()
    assert all(torch.equal(loaded[k], source[k]) for k in source)


def test_a_missing_run_or_checkpoint_or_model_exits_2(compose_cfg, source_run, tmp_path):
    with pytest.raises(ConfigError, match=r"init.from=\S+/nowhere: no such run folder$"):
        build(compose_cfg(f"init.from={tmp_path / 'nowhere'}"))
    (source_run / "best.pt").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match=r"it has no best.pt \(init.from_checkpoint=best\); it has: last"):
        build(compose_cfg(f"init.from={source_run}", "init.from_checkpoint=best"))
    with pytest.raises(ConfigError, match="none of its parameters fits this model"):
        build(compose_cfg("model=cnn", "data=shapes", "data.n_samples=64", f"init.from={source_run}",
                          "init.from_checkpoint=last"))


def test_fine_tuning_reaches_0_9_in_fewer_epochs_than_training_from_scratch(compose_cfg):
    """The lectures' pre-training then fine-tuning, on 3 seeds: a 10-class digits run, then
    the 5-class subset (its output layer re-initialized) from its weights against from its init.
    Each source run has its target's seed, so the target's validation split is the source's
    for those classes: nothing validated on was trained on."""
    for seed in range(3):
        source = train(compose_cfg("trainer.epochs=5", f"trainer.seed={seed}", "trainer.checkpoint_every_s=0")).run_dir
        target = (SUBSET, "optimizer.lr=0.02", "trainer.epochs=6", f"trainer.seed={seed}")
        scratch = epochs_to(val_accs(train(compose_cfg(*target)).run_dir), 0.9)
        tuned = epochs_to(val_accs(train(compose_cfg(*target, f"init.from={source}")).run_dir), 0.9)
        assert tuned < scratch, (seed, tuned, scratch)


@pytest.mark.parametrize("overrides, line", [
    (["init.from=nowhere"], "optlab: error: init.from=nowhere: no such run folder"),
    (["trainer.freeze=[features.9]"], ("optlab: error: trainer.freeze: features.9 matches no parameter; "
                                       "the parameters are under: features.1.0, features.2.0, head")),
    (["optimizer.lr_scale={head: 0}"], ("optlab: error: optimizer.lr_scale={'head': 0}: must be a mapping of "
                                        "parameter-name prefixes to numbers > 0")),
    (["trainer.train_only=head"], "optlab: error: trainer.train_only=head: did you mean norm+head? choose from: norm, norm+head"),
])
def test_bad_settings_exit_2_with_one_line(optlab, overrides, line):
    result = optlab("train", "trainer.progress=false", *overrides)
    assert (result.returncode, result.stderr.strip().splitlines()) == (2, [line])
