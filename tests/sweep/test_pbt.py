"""PBT's rule (runner/sweep/pbt.py): the quantiles, the ranking, exploit's donors, explore's
factors and bounds, the settings it refuses; and a toy objective whose best lr moves, which
the population tracks and fixed trials cannot."""
from __future__ import annotations

import math

import numpy as np
import pytest

from optlab.errors import ConfigError
from optlab.sweep.pbt import check_pbt_spec, clip, explore, is_round, plan_round, quantile_size, ranked, sample
from optlab.sweep.spec import Param, PbtSettings, spec_from_dict

LR = {"optimizer.lr": {"type": "float", "low": 1.0e-4, "high": 1.0, "log": True}}


def pbt_spec(**fields):
    raw = {"study": "unit", "scheduler": "pbt", "population": 8, "sampler": "random", "space": LR, **fields}
    return spec_from_dict(raw)


@pytest.mark.parametrize("members, quantile, size", [(8, 0.25, 2), (4, 0.25, 1), (2, 0.25, 1), (10, 0.25, 3),
                                                     (5, 0.5, 2), (16, 0.1, 2), (3, 0.5, 1)])
def test_the_quantile_is_rays_ceil_of_k_times_the_fraction_at_most_half(members, quantile, size):
    assert quantile_size(members, quantile) == size == min(math.ceil(members * quantile), members // 2)


def test_members_rank_best_first_by_the_direction_with_nan_and_infinite_last():
    scores = {0: 0.5, 1: math.nan, 2: 0.9, 3: 0.1, 4: math.inf, 5: 0.9}
    assert ranked(scores, "maximize") == [2, 5, 0, 3, 1, 4]
    assert ranked(scores, "minimize") == [3, 0, 2, 5, 1, 4]


def test_a_round_ends_every_interval_th_epoch_but_never_the_last():
    settings = PbtSettings(interval=3)
    assert [e for e in range(12) if is_round(e, settings, 12)] == [2, 5, 8]


def test_a_due_round_moves_the_bottom_quantile_onto_top_members_and_explores_the_donors_values():
    spec = pbt_spec(pbt={"perturb": [0.8, 1.25], "resample": 0.0})
    scores = {k: s for k, s in enumerate([0.1, 0.9, 0.5, 0.8, 0.2, 0.7, 0.6, 0.95])}
    values = {k: {"optimizer.lr": 0.01 * (k + 1)} for k in scores}
    events = plan_round(5, scores, values, spec, seed=7, due=True)
    assert sorted(e.member for e in events) == [0, 4]  # the two worst of eight
    for event in events:
        assert event.donor in (7, 1)  # the two best
        assert event.before == values[event.member]
        factor = event.after["optimizer.lr"] / values[event.donor]["optimizer.lr"]
        assert factor == pytest.approx(0.8) or factor == pytest.approx(1.25)
        assert event.how["optimizer.lr"] in ("x0.8", "x1.25") and event.reason == "bottom quantile"
    assert plan_round(5, scores, values, spec, seed=7, due=True) == events  # decided again: the same
    assert plan_round(5, scores, values, spec, seed=7, due=False) == []


def test_a_diverged_member_is_revived_at_once_from_a_finite_top_member():
    spec = pbt_spec()
    scores = {0: 0.9, 1: math.nan, 2: 0.5, 3: 0.7}
    values = {k: {"optimizer.lr": 0.1} for k in scores}
    events = plan_round(0, scores, values, spec, seed=1, due=False)
    assert [(e.member, e.donor, e.reason) for e in events] == [(1, 0, "diverged")]
    assert plan_round(0, {k: math.nan for k in scores}, values, spec, seed=1, due=True) == []  # none to copy


@pytest.mark.parametrize("param", [
    Param("lr", "float", "optimizer.lr", low=1e-4, high=1.0, log=True),
    Param("wd", "float", "optimizer.weight_decay", low=0.0, high=0.01),
    Param("step", "int", "schedule.step_size", low=1, high=9),
    Param("m", "float", "optimizer.momentum", low=0.5, high=0.95, step=0.05)])
def test_explored_values_stay_within_the_spaces_bounds(param):
    rng = np.random.default_rng(0)
    settings = PbtSettings(perturb=(0.5, 3.0), resample=0.3)
    value = param.low if param.kind == "int" else (param.low + param.high) / 2 or 1e-3
    for _ in range(500):
        value = explore({param.key: value}, (param,), settings, rng)[0][param.key]
        assert param.low <= value <= param.high
        if param.kind == "int":
            assert isinstance(value, int)
        if param.step is not None:
            assert abs((value - param.low) / param.step - round((value - param.low) / param.step)) < 1e-9
    assert all(param.low <= sample(param, rng) <= param.high for _ in range(200))


def test_perturbing_multiplies_log_and_linear_values_and_clips_at_the_bounds():
    lr = Param("lr", "float", "optimizer.lr", low=1e-4, high=1.0, log=True)
    assert clip(lr, 0.5 * 3.0) == 1.0 and clip(lr, 1e-6) == 1e-4
    rng = np.random.default_rng(3)
    after, how = explore({"optimizer.lr": 0.01}, (lr,), PbtSettings(perturb=(1.2,), resample=0.0), rng)
    assert after["optimizer.lr"] == pytest.approx(0.012) and how == {"optimizer.lr": "x1.2"}


def test_a_categorical_value_is_always_drawn_anew_from_its_choices():
    choice = Param("m", "categorical", "optimizer.momentum", choices=(0.0, 0.5, 0.9))
    rng = np.random.default_rng(0)
    drawn = [explore({"optimizer.momentum": 0.5}, (choice,), PbtSettings(resample=0.0), rng) for _ in range(60)]
    assert {after["optimizer.momentum"] for after, _ in drawn} == {0.0, 0.5, 0.9}
    assert {how["optimizer.momentum"] for _, how in drawn} == {"resampled"}


def test_resampling_happens_at_about_its_probability():
    lr = Param("lr", "float", "optimizer.lr", low=1e-4, high=1.0, log=True)
    rng = np.random.default_rng(1)
    hows = [explore({"optimizer.lr": 0.01}, (lr,), PbtSettings(resample=0.25), rng)[1]["optimizer.lr"]
            for _ in range(2000)]
    assert 0.22 < hows.count("resampled") / 2000 < 0.28


@pytest.mark.parametrize("fields, words", [
    ({"population": None}, "--population K"),
    ({"trials": 20}, "budget is its population"),
    ({"seeds": 2}, "seeds=2"),
    ({"pruner": "median"}, "pruner=median"),
    ({"jobs": 2}, "--jobs 2"),
    ({"space": {"model.width": {"type": "int", "low": 8, "high": 64}}}, "model.width shapes the run"),
    ({"space": {"optimizer.name": ["sgd", "adam"]}}, "not one number"),
    ({"space": {**LR, "optimizer.momentum": {"type": "float", "low": 0.5, "high": 0.9,
                                             "when": {"optimizer.lr": [0.1]}}}}, "conditional"),
])
def test_what_a_pbt_sweep_cannot_do_is_refused_in_one_line(fields, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        check_pbt_spec(pbt_spec(**fields))


@pytest.mark.parametrize("pbt, words", [({"intervall": 2}, "did you mean interval"), ({"quantile": 0.7}, r"\(0, 0.5\]"),
                                        ({"perturb": []}, "factors > 0"), ({"resample": 2}, r"\[0, 1\]")])
def test_bad_pbt_settings_name_the_key_and_what_it_takes(pbt, words):
    with pytest.raises(ConfigError, match=words):
        pbt_spec(pbt=pbt)


def test_a_pbt_sweeps_budget_is_its_population_and_its_defaults_are_rays():
    spec = pbt_spec()
    assert spec.trials == 8 and spec.jobs == 1
    assert spec.pbt == PbtSettings(interval=4, quantile=0.25, perturb=(1.2, 0.8), resample=0.25)


def moving_target(epoch: int) -> float:
    """The toy's best lr: 0.1, halving every 3 epochs."""
    return 0.1 * 0.5 ** (epoch // 3)


def toy_gain(lr: float, epoch: int) -> float:
    """An epoch's progress under this lr: 1 at the epoch's best lr, less the further (in log10) from it."""
    return 1.0 - abs(math.log10(lr) - math.log10(moving_target(epoch)))


def test_on_a_toy_whose_best_lr_moves_the_population_tracks_it_and_fixed_trials_cannot():
    """Each member's 'weights' are its progress so far (what exploit copies); its score the
    progress. Fixed trials train the same 16 initial lrs unchanged for 24 epochs."""
    spec = pbt_spec(population=16, pbt={"interval": 2, "perturb": [0.8, 1.25], "resample": 0.25})
    rng = np.random.default_rng(0)
    initial = [sample(spec.space[0], rng) for _ in range(16)]
    values = {k: {"optimizer.lr": lr} for k, lr in enumerate(initial)}
    progress = {k: 0.0 for k in values}
    for epoch in range(24):
        for k in values:
            progress[k] += toy_gain(values[k]["optimizer.lr"], epoch)
        for event in plan_round(epoch, dict(progress), values, spec, seed=5, due=is_round(epoch, spec.pbt, 24)):
            progress[event.member], values[event.member] = progress[event.donor], event.after
    fixed = max(sum(toy_gain(lr, epoch) for epoch in range(24)) for lr in initial)
    assert max(progress.values()) > fixed + 2.0  # at equal compute, PBT's best beats the best fixed trial
    final = sorted(abs(math.log10(v["optimizer.lr"] / moving_target(23))) for v in values.values())
    assert final[len(final) // 2] < math.log10(2.5)  # the population's median lr within 2.5x of the target
    start = sorted(abs(math.log10(lr / moving_target(23))) for lr in initial)
    assert start[len(start) // 2] > math.log10(5)  # where it started: far from where the target ended
