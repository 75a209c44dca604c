"""Comparison files: the shipped ones load; a bad key, name or value is one line naming it,
the choices and the closest one; a contender may not set what the protocol or workload owns."""
import pytest
import yaml

from optlab.compare.spec import comparison_names, load_comparison, shrunk, spec_from_dict
from optlab.errors import ConfigError

GOOD = {
    "workloads": {"w": {"base": ["data=digits"], "metric": "val_acc", "target": "auto", "epochs": 2, "margin": 0.01}},
    "contenders": {"sgd": {"overrides": ["optimizer=sgd"], "space": {"optimizer.lr": {"low": 0.01, "high": 1.0}}}},
    "protocol": {"tuning": {"studies": 3, "trials": 4, "sampler": "qmc"}, "rerun_seeds": 3},
}


def with_(path: str, value):
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def test_every_shipped_comparison_loads():
    assert "lecture_optimizers" in comparison_names()
    for name in comparison_names():
        spec = load_comparison(name)
        assert len(spec.workloads) >= 1 and len(spec.contenders) >= 2


def test_the_lecture_comparison_has_four_workloads_and_the_lectures_optimizers():
    spec = load_comparison("lecture_optimizers")
    assert len(spec.workloads) >= 4
    assert [c.name for c in spec.contenders] == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta",
                                                  "adam", "adamw"]
    assert (spec.protocol.tuning, spec.protocol.studies, spec.protocol.trials) == ("qmc", 5, 5)


@pytest.mark.parametrize("raw, words", [
    (with_("protocl", {}), ["unknown key 'protocl'", "did you mean protocol"]),
    (with_("workloads.w.metric", "val_acc_top1"), ["metric 'val_acc_top1'", "val_acc, val_loss", "did you mean val_acc"]),
    (with_("workloads.w.target", "best"), ["target 'best'", "auto"]),
    (with_("workloads.w.margn", 0.1), ["unknown key 'margn'", "did you mean margin"]),
    (with_("protocol.tuning.sampler", "qcm"), ["sampler 'qcm'", "did you mean qmc"]),
    (with_("protocol.at", "last"), ["at 'last'", "final, best"]),
    (with_("protocol.rerun_seeds", 1), ["rerun_seeds", ">= 2"]),
    (with_("contenders.sgd.overrides", ["optimizer=sgd", "trainer.epochs=50"]), ["trainer.epochs", "budget parity"]),
    (with_("contenders.sgd.space", {"trainer.seed": [1, 2]}), ["trainer.seed", "protocol's seeds"]),
    (with_("contenders.sgd.overrides", ["data.n_samples=10"]), ["data.n_samples", "the workload's"]),
    (with_("contenders.sgd.space", {}), ["space is missing"]),
    (with_("workloads.w.base", ["data=digits", "trainer.seed=3"]), ["base sets trainer.seed", "protocol's seeds"]),
    (with_("workloads.w.base", ["trainer.epochs=3"]), ["base sets trainer.epochs", "`epochs` key"]),
    (with_("protocol.tuning", "defaults"), ["space given", "defaults"]),
    (with_("contenders.Bad-Name", {}), ["contender name 'Bad-Name'"]),
])
def test_a_bad_comparison_is_one_line_naming_the_key(raw, words):
    with pytest.raises(ConfigError) as caught:
        spec_from_dict("t", raw)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_an_unknown_name_lists_the_shipped_comparisons_and_the_closest():
    with pytest.raises(ConfigError, match="did you mean lecture_optimizers"):
        load_comparison("lecture_optimisers")


def test_defaults_is_five_studies_of_one_run_and_quick_shrinks_everything():
    raw = with_("protocol.tuning", "defaults")
    raw["contenders"]["sgd"].pop("space")
    raw["quick"] = {"studies": 2, "epochs": 1, "overrides": ["model.width=8"], "rerun_seeds": 2}
    spec = spec_from_dict("t", raw)
    assert (spec.protocol.studies, spec.protocol.trials) == (5, 1)
    small = shrunk(spec)
    assert (small.protocol.studies, small.protocol.trials, small.protocol.rerun_seeds) == (2, 1, 2)
    assert small.workloads[0].epochs == 1 and small.workloads[0].base[-1] == "model.width=8"
