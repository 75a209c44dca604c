"""The learning-rate range test: the lr's growth, stopping on divergence, and a suggestion that trains well."""
import math

import pytest

from optlab.training.api import train
from optlab.training.lrfind import lr_at, run_range_test, write_results


def test_lr_grows_exponentially_from_min_to_max():
    assert lr_at(0, 11, 1e-5, 1e0) == pytest.approx(1e-5)
    assert lr_at(10, 11, 1e-5, 1e0) == pytest.approx(1.0)
    assert lr_at(5, 11, 1e-5, 1e0) == pytest.approx(10 ** -2.5)


def test_range_test_stops_when_the_loss_explodes(compose_cfg):
    result = run_range_test(compose_cfg("optimizer=sgd"), lr_min=1e-4, lr_max=1e4, steps=150)
    assert len(result.lrs) < 150
    assert 1e-4 <= result.suggested_lr <= 1e4


def test_suggested_lr_beats_a_hundred_times_smaller_and_larger(compose_cfg, tmp_path):
    cfg = compose_cfg("optimizer=sgd")
    found = run_range_test(cfg, lr_min=1e-5, lr_max=10.0, steps=120)
    paths = write_results(found, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)

    def final_val_loss(lr):
        summary = None
        try:
            summary = train(compose_cfg("optimizer=sgd", f"optimizer.lr={lr}", "trainer.epochs=3")).summary
        except Exception as exc:  # a diverged run is the worst outcome
            summary = getattr(getattr(exc, "result", None), "summary", {}) or {}
        value = summary.get("final_val_loss")
        return value if value is not None and math.isfinite(value) else math.inf

    suggested = final_val_loss(found.suggested_lr)
    assert suggested < final_val_loss(found.suggested_lr / 100)
    assert suggested < final_val_loss(found.suggested_lr * 100)


def test_the_range_test_takes_a_runs_step_with_its_clipping(compose_cfg):
    """The lr-find step is the solo engine's: gradient clipping (and penalties, autocast)
    apply as they do in training."""
    plain = run_range_test(compose_cfg(), steps=12)
    clipped = run_range_test(compose_cfg("regularize.clip_norm=0.001"), steps=12)
    assert plain.losses[0] == clipped.losses[0]  # the first loss is measured before any step
    assert plain.losses[1:] != clipped.losses[1:]
