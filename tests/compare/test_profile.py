"""Performance profiles and the score against a hand computation: ties, censored runs, a
workload nobody solved, a ratio past tau_max; the bootstrap interval on cases whose
resamples can be listed."""
import math

import pytest

from optlab.compare.profile import bootstrap, breakpoints, ratios, rho, score, scores

INF = math.inf
TIMES = {  # steps to target; inf: censored
    "tie": {"a": 100.0, "b": 100.0, "c": INF},      # a and b tie for fastest
    "spread": {"a": 200.0, "b": 100.0, "c": 300.0},
    "unsolved": {"a": INF, "b": INF, "c": INF},      # nobody reached the target
    "far": {"a": 100.0, "b": 500.0, "c": 150.0},     # b beyond tau_max = 4
}


def test_ratios_are_times_over_the_fastest_and_infinite_where_censored():
    r = ratios(TIMES)
    assert r["tie"] == {"a": 1.0, "b": 1.0, "c": INF}
    assert r["spread"] == {"a": 2.0, "b": 1.0, "c": 3.0}
    assert r["unsolved"] == {"a": INF, "b": INF, "c": INF}
    assert r["far"] == {"a": 1.0, "b": 5.0, "c": 1.5}


def test_the_profile_counts_workloads_within_tau():
    r = ratios(TIMES)
    assert [rho(r, "a", tau) for tau in (1, 1.99, 2, 4)] == [0.5, 0.5, 0.75, 0.75]
    assert [rho(r, "b", tau) for tau in (1, 4, 5)] == [0.5, 0.5, 0.75]
    assert [rho(r, "c", tau) for tau in (1, 1.5, 3, 4)] == [0.0, 0.25, 0.5, 0.5]
    assert breakpoints(r, 4) == [1.0, 1.5, 2.0, 3.0, 4.0]


def test_the_score_is_the_normalised_area_under_the_profile_by_hand():
    # a: (4-1)/3 + (4-2)/3 + 0 + (4-1)/3 = 8/3 over 4 workloads; b: 1 + 1 + 0 + 0 (5 > 4);
    # c: 0 + (4-3)/3 + 0 + (4-1.5)/3 = 7/6
    assert scores(TIMES, 4.0) == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 7 / 24})


@pytest.mark.parametrize("contender", ["a", "b", "c"])
def test_the_score_equals_the_profile_integrated_numerically(contender):
    r = ratios(TIMES)
    steps = 30_000
    taus = [1 + 3 * (i + 0.5) / steps for i in range(steps)]  # midpoints over [1, 4]
    area = sum(rho(r, contender, t) for t in taus) * 3 / steps
    assert score(r, contender, 4.0) == pytest.approx(area / 3, abs=1e-4)


def test_the_interval_of_a_fixed_table_holds_the_score_and_one_workload_has_none():
    fixed = {w: {c: [t, t, t] for c, t in by_c.items()} for w, by_c in TIMES.items()}
    interval = bootstrap(fixed, 4.0, 2000)
    point = scores(TIMES, 4.0)
    for c, (low, high) in interval.items():
        assert low <= point[c] <= high
    alone = bootstrap({"far": fixed["far"]}, 4.0, 200)  # one workload, studies alike: nothing to resample
    for c, s in scores({"far": TIMES["far"]}, 4.0).items():
        assert alone[c] == pytest.approx((s, s))


def test_the_interval_spans_the_resamples_of_workloads_and_studies():
    # a is fastest on w1 and never reaches w2's target: resampled workloads give 1, 1/2 or 0
    two = {"w1": {"a": [10.0], "b": [20.0]}, "w2": {"a": [INF], "b": [20.0]}}
    assert bootstrap(two, 4.0, 4000)["a"] == (0.0, 1.0)
    # one workload, a's studies 10 or 40 against b's 20: a's median is 10, 25 or 40 (ratio 1, 1.25, 2)
    # when b's is 20, so a's score lies between 2/3 and 1
    studies = {"w": {"a": [10.0, 40.0, 10.0], "b": [20.0, 20.0, 20.0]}}
    low, high = bootstrap(studies, 4.0, 4000)["a"]
    assert low == pytest.approx(2 / 3) and high == pytest.approx(1.0)
