"""Time to target, a study's and a contender's time, the auto target and the chosen setting,
on constructed metrics rows."""
import math
from dataclasses import replace
from pathlib import Path

import pytest

from optlab.compare.measure import (
    Trial,
    auto_target,
    chosen,
    median_time,
    study_times,
    time_to_target,
    value_at,
)
from optlab.compare.spec import ComparisonSpec, Contender, Protocol, Workload

INF = math.inf


def rows(values, steps_per_epoch=10, seconds=0.5, column="val_acc"):
    return tuple({"epoch": e, "step": steps_per_epoch * (e + 1), "epoch_time_s": seconds, column: v}
                 for e, v in enumerate(values))


def trial(values, study=0, number=0, contender="a", column="val_acc", epochs=None, lr=None):
    return Trial("w", contender, study, number, study, (f"optimizer.lr={lr or number}",), Path("."), "completed",
                 rows(values, column=column), epochs or len(values))


ACC = Workload("w", (), "val_acc", None, 4, 0.01)
LOSS = Workload("w", (), "val_loss", None, 4, 0.01)


def spec(*contenders):
    return ComparisonSpec("t", "", (ACC,), tuple(Contender(c, (), {"x": [1]}) for c in contenders),
                          Protocol("qmc", 3, 2, 2))


def test_time_to_target_is_the_first_epoch_reaching_it_in_steps_and_seconds():
    reach = time_to_target(rows([0.5, 0.9, 0.95, 0.97]), "val_acc", 0.9, True, 4)
    assert (reach.steps, reach.seconds, reach.censored) == (20.0, 1.0, False)
    loss = time_to_target(rows([2.0, 0.5, 0.1], column="val_loss"), "val_loss", 0.5, False, 3)
    assert (loss.steps, loss.censored) == (20.0, False)


def test_a_run_that_never_reaches_the_target_is_censored_with_its_budget_as_lower_bound():
    reach = time_to_target(rows([0.5, 0.6]), "val_acc", 0.9, True, epochs=4)  # diverged after 2 of 4 epochs
    assert reach.censored and reach.steps == INF and reach.seconds == INF
    assert (reach.bound_steps, reach.bound_seconds) == (40.0, 1.0)
    nan = time_to_target(rows([math.nan, math.nan]), "val_acc", 0.1, True, 2)
    assert nan.censored


def test_value_at_final_or_best():
    r = rows([0.5, 0.9, 0.8])
    assert value_at(r, "val_acc", "final", True) == 0.8 and value_at(r, "val_acc", "best", True) == 0.9
    assert value_at(rows([2.0, 0.5, 0.7], column="val_loss"), "val_loss", "best", False) == 0.5
    assert math.isnan(value_at((), "val_acc", "final", True))


def test_a_studys_time_is_its_fastest_trial_and_a_contenders_the_median_over_studies():
    trials = [trial([0.5, 0.95], study=0, number=0), trial([0.95, 0.96], study=0, number=1),
              trial([0.5, 0.6], study=1, number=0), trial([0.5, 0.5, 0.5, 0.92], study=2, number=0)]
    times = study_times(trials, ACC, 0.9, studies=3)
    assert times == [10.0, INF, 40.0]
    assert median_time(times) == 40.0
    assert median_time([10.0, INF, INF]) == INF and median_time([10.0, 30.0]) == 20.0
    assert median_time([10.0, INF]) == INF  # an even count's median is the mean of the middle two


def test_auto_target_is_the_best_contenders_median_study_best():
    trials = [trial([0.8, 0.90], study=0, contender="a"), trial([0.7, 0.95], study=1, contender="a"),
              trial([0.97], study=2, contender="a"),
              trial([0.99], study=0, contender="b"), trial([0.5], study=1, contender="b"),
              trial([0.6], study=2, contender="b")]
    assert auto_target(spec("a", "b"), ACC, trials) == (0.95, "a")  # a: median(0.90, 0.95, 0.97); b: 0.6


def test_the_chosen_setting_is_the_best_final_metric_then_the_fastest_then_the_earliest():
    slow = trial([0.5, 0.5, 0.97], study=0, number=0)
    fast = trial([0.97, 0.97, 0.97], study=1, number=0)
    late = trial([0.97, 0.97, 0.97], study=2, number=1)
    worse = trial([0.99, 0.99, 0.90], study=0, number=1)
    diverged = trial([math.nan], study=0, number=2)
    assert chosen([slow, late, fast, worse, diverged], ACC, 0.95, "final") is fast
    assert chosen([slow, worse, diverged], ACC, 0.95, "best") is worse
    assert chosen([diverged], ACC, 0.95, "final") is None
    retried = trial([0.97, 0.97, 0.97], study=1, number=7, lr=0.05)  # a tie in study 1, numbered later by a retry
    assert chosen([fast, retried], ACC, 0.95, "final") is chosen([retried, fast], ACC, 0.95, "final") is fast
    low = trial([1.0, 0.2], column="val_loss")
    high = trial([0.1, 0.3], column="val_loss", number=1)
    assert chosen([low, high], LOSS, 0.5, "final") is low


def test_auto_target_is_set_from_the_first_share_of_the_epochs():
    late = [trial([0.5, 0.6, 0.99, 0.99], study=s, contender="a") for s in range(3)]  # best only after epoch 2
    early = [trial([0.9, 0.92, 0.93, 0.93], study=s, contender="b") for s in range(3)]
    assert auto_target(spec("a", "b"), ACC, late + early) == (0.92, "b")  # ACC's 4 epochs: the first 2 count
    whole = replace(spec("a", "b"), protocol=Protocol("qmc", 3, 2, 2, target_share=1.0))
    assert auto_target(whole, ACC, late + early) == (0.99, "a")
