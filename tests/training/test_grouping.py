"""Which runs train together: structure and why_solo, and the groups train_many hands out."""
from __future__ import annotations

import pytest

from optlab.config.compose import compose
from optlab.training.driver import RunRequest
import optlab.training.grouping as grouping
from optlab.training.grouping import Pending, auto_size, population_setting, structure, why_solo

SMALL = ["model.width=32", "trainer.progress=false"]


def test_configs_differ_in_hyper_parameters_and_seeds_but_share_a_structure():
    base = [*SMALL, "trainer.epochs=1"]
    same = [compose([*base, "optimizer.lr=0.1", "trainer.seed=0"]), compose([*base, "optimizer.lr=0.3", "trainer.seed=4",
                                                                            "regularize.l2=0.01", "init=normal",
                                                                            "init.std=0.1"])]
    assert structure(same[0]) != structure(same[1])  # init=normal is another rule
    assert structure(compose([*base, "init=normal", "init.std=0.2"])) == structure(same[1])
    assert structure(compose([*base, "model.width=64"])) != structure(same[0])
    assert why_solo(compose([*base, "trainer.diagnostics=true"])) and why_solo(compose(base)) is None


@pytest.mark.parametrize("override, why", [
    ("init.from=/runs/a", "init.from=/runs/a loads one run's weights"),
    ("trainer.freeze=[head]", "trainer.freeze=['head']: populations update every parameter"),
    ("trainer.train_only=norm", "trainer.train_only=norm: populations update every parameter"),
    ("optimizer.lr_scale={head: 10}", "optimizer.lr_scale: populations keep one lr per member"),
    ("norm.noise=true", "norm.noise=true draws the noise from one run's generator"),
])
def test_transfer_freezing_and_noise_train_alone(override, why):
    assert why_solo(compose([*SMALL, "norm=batch", override])) == why
    assert why_solo(compose([*SMALL, "data.keep_classes=[0,1,2]"])) is None  # the data: every member's


def test_groups_are_up_to_k_runs_of_one_structure_in_order_and_more_is_asked_when_none_waits(capsys):
    base = [*SMALL, "trainer.epochs=1"]
    runs = [RunRequest(compose([*base, f"trainer.seed={k}", f"model.width={width}", f"trainer.diagnostics={d}"]))
            for k, (width, d) in enumerate([(32, False), (64, False), (32, False), (32, True), (32, False)])]
    asked = []

    def more(places):
        asked.append(places)
        return [RunRequest(compose([*base, "trainer.seed=9"]))] if len(asked) == 1 else []

    pending = Pending(2, more)
    pending.add(runs)
    assert "trains alone: trainer.diagnostics=true" in capsys.readouterr().err
    groups = []
    while (group := pending.next_group()) is not None:
        groups.append([int(r.cfg.trainer.seed) for r in group])
    assert groups == [[0, 2], [1], [3], [4, 9]]  # width 32 in pairs; 64 alone; diagnostics alone; then more's run
    assert asked == [1, 1, 2]  # for a partner of the width-64 run (twice: the first answer was a width 32), then for an empty queue


def test_a_stopped_request_is_dropped_while_it_waits():
    dropped = []
    pending = Pending(2, on_dropped=dropped.append)
    runs = [RunRequest(compose([*SMALL, f"trainer.seed={k}"])) for k in range(3)]
    pending.add(runs)
    runs[1].stop = "its trial was pruned"
    assert [int(r.cfg.trainer.seed) for r in pending.next_group()] == [0, 2]
    assert dropped == [runs[1]] and pending.next_group() is None


@pytest.mark.parametrize("size", [1, 4])
def test_population_one_trains_everything_alone_without_a_word(size, capsys):
    pending = Pending(size)
    pending.add([RunRequest(compose([*SMALL, "trainer.diagnostics=true"]))])
    assert ("trains alone" in capsys.readouterr().err) == (size > 1)


@pytest.mark.parametrize("value, expected", [(None, None), ("auto", "auto"), ("4", 4), (16, 16)])
def test_a_population_is_a_number_of_runs_or_auto(value, expected):
    assert population_setting(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5", True])
def test_anything_else_is_one_line_naming_the_flag(value):
    from optlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--population .*: give a number of runs >= 1, or auto"):
        population_setting(value)


def test_auto_picks_the_size_measured_fastest_per_member_up_to_the_runs_planned(monkeypatch, capsys):
    """Not a constant: the K whose step took the least time per member, among those the plan can fill."""
    import optlab.training.stacked as stacked

    cfg = compose([*SMALL, "trainer.epochs=1"])
    for timings, planned, expected in (({4: 3.0, 8: 2.0, 16: 1.0, 32: 1.5, 64: 2.5}, 100, 16),
                                       ({4: 3.0, 8: 2.0, 16: 1.0, 32: 0.9, 64: 0.8}, 100, 64),
                                       ({4: 3.0, 8: 2.0, 16: 1.0, 32: 0.9, 64: 0.8}, 10, 8)):
        monkeypatch.setattr(grouping, "_MEASURED", {})
        monkeypatch.setattr(stacked, "member_step_seconds", lambda c, key, k, t=timings: t[k])
        assert auto_size(cfg, planned) == expected
        assert f"--population auto: K={expected}" in capsys.readouterr().err


def test_auto_measures_the_stacked_step_for_real(capsys):
    size = auto_size(compose([*SMALL, "trainer.epochs=1", "model.width=8"]), planned=8)
    assert size in (4, 8) and "a member's step: K=4" in capsys.readouterr().err


def test_auto_trains_dropout_alone_and_an_explicit_k_stacks_it(monkeypatch, capsys):
    """A member's dropout masks depend on which runs share its population, and auto's K on a
    timing: under auto such runs train alone, so one command gives the same numbers on every
    machine; --population K stacks them (nothing is measured for them)."""
    import optlab.training.stacked as stacked

    monkeypatch.setattr(stacked, "member_step_seconds", lambda *a: pytest.fail("measured a run that trains alone"))
    runs = lambda: [RunRequest(compose([*SMALL, "model.dropout=0.5", f"trainer.seed={k}"])) for k in range(3)]  # noqa: E731
    auto = Pending(grouping.AUTO)
    auto.add(runs())
    assert "trains alone: model.dropout=0.5: its masks would depend on which runs share" in capsys.readouterr().err
    assert [len(auto.next_group()) for _ in range(3)] == [1, 1, 1]
    stacked_k = Pending(4)
    stacked_k.add(runs())
    assert len(stacked_k.next_group()) == 3 and capsys.readouterr().err == ""
