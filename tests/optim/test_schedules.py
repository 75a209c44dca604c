"""Each lr schedule at chosen progress t against its formula; warmup; interval; plateau."""
import math

import pytest

import optlab.training.build as loop
from optlab.config.compose import group_options
from optlab.errors import ConfigError
from optlab.optim.schedules import SCHEDULES, after_epoch, learning_rate, progress
from optlab.training.api import train

LR0 = 0.2


def option_cfg(name: str, **overrides) -> dict:
    """The schedule's config as its spec declares it (its YAML's defaults), some values replaced."""
    return SCHEDULES.get(name).defaults(**overrides)


def lr_at(cfg: dict, t: float, total: float = 10, unit: float = 0.1) -> float:
    return learning_rate(cfg, LR0, t, total, unit)


def test_every_registered_schedule_has_a_yaml():
    assert set(SCHEDULES.names()) == set(group_options("schedule"))


@pytest.mark.parametrize("t", [0, 3.5, 9.9])
def test_constant(t):
    assert lr_at(option_cfg("constant"), t) == pytest.approx(LR0)


@pytest.mark.parametrize("t, drops", [(0, 0), (2.9, 0), (3, 1), (5.99, 1), (6, 2), (9.5, 3)])
def test_step_multiplies_by_gamma_every_step_size_epochs(t, drops):
    cfg = option_cfg("step", step_size=3, gamma=0.5)
    assert lr_at(cfg, t) == pytest.approx(LR0 * 0.5 ** drops)


@pytest.mark.parametrize("t, drops", [(0, 0), (1.99, 0), (2, 1), (4.5, 1), (5, 2), (9, 2)])
def test_multistep_multiplies_by_gamma_at_each_milestone(t, drops):
    cfg = option_cfg("multistep", milestones=[2, 5], gamma=0.1)
    assert lr_at(cfg, t) == pytest.approx(LR0 * 0.1 ** drops)


@pytest.mark.parametrize("t", [0, 1, 2.5, 7])
def test_exponential_is_gamma_to_the_t(t):
    assert lr_at(option_cfg("exponential", gamma=0.8), t) == pytest.approx(LR0 * 0.8 ** t)


@pytest.mark.parametrize("t", [0, 1, 2, 3, 4, 7.5])
def test_inverse_time_is_lr0_over_one_plus_k_t(t):
    assert lr_at(option_cfg("inverse_time", k=0.5), t) == pytest.approx(LR0 / (1 + 0.5 * t))


@pytest.mark.parametrize("t, expected", [(0, LR0), (5, (LR0 + 0.01) / 2), (10, 0.01),
                                         (2.5, 0.01 + (LR0 - 0.01) * (1 + math.cos(math.pi / 4)) / 2)])
def test_cosine_anneals_to_min_lr(t, expected):
    assert lr_at(option_cfg("cosine", min_lr=0.01), t) == pytest.approx(expected)


def test_onecycle_rises_to_max_lr_then_falls_to_its_floor():
    cfg = option_cfg("onecycle", max_lr=1.0, pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
    start, floor = 1.0 / 25, 1.0 / 25 / 1e4
    assert lr_at(cfg, 0) == pytest.approx(start)
    assert lr_at(cfg, 1.5) == pytest.approx((start + 1.0) / 2)  # half way up, cosine midpoint
    assert lr_at(cfg, 3) == pytest.approx(1.0)
    assert lr_at(cfg, 6.5) == pytest.approx((1.0 + floor) / 2)  # half way down
    assert lr_at(cfg, 10) == pytest.approx(floor)


def test_onecycle_peaks_at_the_optimizer_lr_when_max_lr_is_null():
    cfg = option_cfg("onecycle", max_lr=None, pct_start=0.5)
    assert lr_at(cfg, 5) == pytest.approx(LR0)
    assert lr_at(cfg, 0) == pytest.approx(LR0 / cfg["div_factor"])


def test_linear_warmup_then_the_schedule_from_its_own_start():
    cfg = option_cfg("step", warmup_epochs=2, step_size=1, gamma=0.5)
    unit = 0.25  # 4 steps per epoch
    assert lr_at(cfg, 0, unit=unit) == pytest.approx(LR0 * 0.25 / 2)  # first step already trains
    assert lr_at(cfg, 1.0, unit=unit) == pytest.approx(LR0 * 1.25 / 2)
    assert lr_at(cfg, 1.75, unit=unit) == pytest.approx(LR0)
    assert lr_at(cfg, 2, unit=unit) == pytest.approx(LR0)  # step schedule at its t=0
    assert lr_at(cfg, 3, unit=unit) == pytest.approx(LR0 * 0.5)


def test_warmup_works_with_every_schedule():
    for name in group_options("schedule"):
        cfg = option_cfg(name, warmup_epochs=4)
        assert lr_at(cfg, 1.0, unit=1.0) == pytest.approx(LR0 * 2 / 4), name


def test_interval_epoch_holds_t_at_the_epoch_start():
    cfg = option_cfg("exponential", interval="epoch")
    assert {progress(cfg, 3, i, 10) for i in range(10)} == {(3.0, 1.0)}
    cfg = option_cfg("exponential", interval="step")
    assert progress(cfg, 3, 5, 10) == (3.5, 0.1)


def test_plateau_reduces_after_patience_epochs_without_improvement():
    cfg = option_cfg("plateau", factor=0.5, patience=2, threshold=0.01, min_scale=0.2)
    losses = [1.0, 0.9, 0.895, 0.95, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    # 0.895 is not 1% better than 0.9: bad epochs 1, 2, 3 -> halve, then 3 more -> halve, ...
    scales = []
    state = {}
    for loss in losses:
        state = after_epoch(cfg, state, loss)
        scales.append(state["scale"])
    assert scales == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2]


def test_non_integer_milestones_are_a_config_error():
    with pytest.raises(ConfigError, match="schedule.milestones"):
        lr_at(option_cfg("multistep", milestones=[1.5, 3]), 2)


def lrs_per_step(monkeypatch, compose_cfg, *overrides) -> list[float]:
    """Train on moons (800 samples, batch 200: 4 steps per epoch); the lr each step uses."""
    seen = []
    real_build = loop.build_optimizer

    def build_and_watch(params, cfg):
        optimizer = real_build(params, cfg)
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr(loop, "build_optimizer", build_and_watch)
    train(compose_cfg("data=moons", "batch.size=200", "optimizer.lr=0.1", *overrides))
    return seen


def test_interval_epoch_changes_the_lr_only_between_epochs(monkeypatch, compose_cfg):
    lrs = lrs_per_step(monkeypatch, compose_cfg, "schedule=exponential", "schedule.gamma=0.5",
                       "schedule.interval=epoch")
    assert lrs == pytest.approx([0.1] * 4 + [0.05] * 4)


def test_interval_step_changes_the_lr_every_step(monkeypatch, compose_cfg):
    lrs = lrs_per_step(monkeypatch, compose_cfg, "schedule=exponential", "schedule.gamma=0.5",
                       "schedule.interval=step")
    assert lrs == pytest.approx([0.1 * 0.5 ** (i / 4) for i in range(8)])


@pytest.mark.parametrize("option", [o for o in group_options("schedule") if o != "custom"])  # tests/test_registry.py
def test_every_schedule_option_trains_one_tiny_epoch(compose_cfg, option):
    result = train(compose_cfg(f"schedule={option}", "trainer.epochs=1", "data=moons"))
    assert result.status == "completed"
    assert math.isfinite(result.summary["final_train_loss"])


@pytest.mark.parametrize("name", [n for n in SCHEDULES.names() if not SCHEDULES.get(n).target])
def test_schedules_the_loop_evaluates_once_per_epoch_are_flat_within_epochs(name):
    from optlab.optim.schedules import changes_within_epoch

    steps = 7
    for cfg in (option_cfg(name), option_cfg(name, warmup_epochs=2), option_cfg(name, interval="epoch")):
        per_step = [[learning_rate(cfg, LR0, *progress(cfg, e, i, steps), 12) for i in range(steps)]
                    for e in range(12)]
        flat = all(len(set(epoch_lrs)) == 1 for epoch_lrs in per_step)
        assert flat or changes_within_epoch(cfg), (name, cfg)
        if name in ("cosine", "exponential", "inverse_time", "onecycle") and cfg["interval"] == "step":
            assert changes_within_epoch(cfg)
