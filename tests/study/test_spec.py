"""Study files: every shipped one loads and is checked; mistakes exit 2 with one line."""
import pytest

from optlab.errors import ConfigError
from optlab.study.spec import (
    builtin_studies_dir,
    load_study,
    spec_from_dict,
    study_names,
)

ISSUE_STUDIES = {"symmetry", "glorot2010_depth", "he2015_deep_relu", "saturation", "input_standardization",
                 "momentum_ill_conditioned", "ioffe2015_batchnorm", "santurkar2018_noisy_bn", "frankle2020_bn_only",
                 "li_arora2019_exp_lr", "srivastava2014_dropout", "goyal2017_linear_scaling",
                 "smith_le2017_batch_growth", "bergstra2012_random_search"}

MINIMAL = {"claim": "c", "source": "s", "scaled_down": "d", "arms": {"a": ["optimizer.lr=0.1"], "b": []},
           "measures": {"acc": {"kind": "metric", "column": "val_acc"}},
           "criteria": [{"kind": "welch", "measure": "acc", "a": "a", "b": "b", "direction": "greater"}],
           "figure": {"kind": "bars"}}


def test_every_study_of_the_issue_ships_and_loads():
    assert ISSUE_STUDIES <= set(study_names())
    for name in study_names():
        spec = load_study(name)
        assert spec.claim and spec.source and spec.scaled_down and spec.criteria


def test_the_studies_folder_placeholder_points_at_the_shipped_data():
    spec = load_study("momentum_ill_conditioned")
    path = next(o for o in spec.base if o.startswith("data.path=")).split("=", 1)[1]
    assert path == str(builtin_studies_dir() / "data" / "ill_conditioned.npz")


@pytest.mark.parametrize("change, words", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"claim": ""}, "claim is missing"),
    ({"criteria": [{"kind": "welch", "measure": "acc", "a": "a", "b": "zz", "direction": "greater"}]}, "arms must be"),
    ({"criteria": [{"kind": "welch", "measure": "loss", "a": "a", "b": "b", "direction": "greater"}]}, "measure must be"),
    ({"criteria": [{"kind": "welch", "measure": "acc", "a": "a", "b": "b"}]}, "direction"),
    ({"criteria": [{"kind": "equivalent", "measure": "acc", "a": "a", "b": "b"}]}, "margin > 0"),
    ({"measures": {"acc": {"kind": "vibes"}}}, "kind must be one of"),
    ({"figure": {"kind": "pie"}}, "figure kind"),
    ({"seeds": 0}, "seeds must be an integer >= 1"),
    ({"quick": {"epochs": 1}}, "quick: unknown key 'epochs'"),
    # what judging, measuring or drawing would otherwise trip over only after every run trained
    ({"criteria": [{"kind": "welch", "measure": "acc", "a": "a", "direction": "greater"}]}, "give a and b"),
    ({"criteria": [{"kind": "equivalent", "measure": "acc", "arm": "a", "margin": 0.1}]}, "give a and b"),
    ({"criteria": [{"kind": "every_seed", "measure": "acc", "arm": "a", "op": "<"}]}, "a threshold"),
    ({"criteria": [{"kind": "every_seed", "measure": "acc", "a": "a", "op": "<", "threshold": 1}]}, "one arm, or a and b"),
    ({"criteria": [{"kind": "every_seed", "measure": "acc", "a": "a", "b": "b", "of": "sum", "op": "<",
                    "threshold": 1}]}, "of must be ratio or diff"),
    ({"measures": {"acc": {"kind": "metric"}}}, "metric needs column"),
    ({"measures": {"acc": {"kind": "to_target", "column": "val_loss"}}}, "to_target needs target"),
    ({"measures": {"acc": {"kind": "metric", "column": "val_acc", "at": "last"}}}, "at must be final, best"),
    ({"measures": {"acc": {"kind": "layer", "stat": "act_std", "reduce": "median"}}}, "reduce 'median'"),
    ({"figure": {"kind": "bars", "measure": "loss"}}, "figure measure must be one of"),
    ({"figure": {"panels": [{"kind": "bars"}, {"kind": "pie"}]}}, "figure kind"),
    ({"figure": {"panels": [{"kind": "curves", "measure": "loss"}]}}, "figure measure must be one of"),
    ({"figure": {"kind": "trials", "x": "optimizer.lr"}}, "a trials panel needs x .* and a sweep arm"),
    ({"population": "auto"}, "population must be an integer >= 1"),
    ({"arms": ["a", "b"]}, "arms must be a mapping"),
    ({"measures": {"acc": "val_acc"}}, "measures must be a mapping"),
    ({"criteria": {"kind": "welch"}}, "criteria must be a list of mappings"),
    ({"figure": "bars"}, "figure must be a mapping"),
    ({"arms": {"a": {"sweep": "random"}, "b": []}}, "arm a: sweep must be a mapping"),
])
def test_a_bad_study_file_is_one_config_error(change, words):
    with pytest.raises(ConfigError, match=words):
        spec_from_dict("bad", {**MINIMAL, **change})


def test_an_unknown_study_names_the_known_ones():
    with pytest.raises(ConfigError, match="choose from: .*he2015_deep_relu"):
        load_study("no_such_study")


COMPARED = {
    "claim": "c", "source": "s", "scaled_down": "d",
    "comparison": {
        "workloads": {"w": {"base": ["data=digits"], "metric": "val_acc", "target": "auto", "epochs": 2,
                            "margin": 0.01},
                      "r": {"base": ["data=linreg", "model=linear"], "metric": "val_loss", "target": 0.1,
                            "epochs": 2, "margin": 0.002}},
        "contenders": {"sgd": {"overrides": ["optimizer=sgd"], "space": {"optimizer.lr": {"low": 0.01, "high": 1.0}}},
                       "adam": {"overrides": ["optimizer=adam"], "space": {"optimizer.lr": {"low": 0.001,
                                                                                            "high": 0.1}}}},
        "protocol": {"tuning": {"studies": 2, "trials": 2}, "rerun_seeds": 3, "at": "best"}},
    "measures": {"tuned": {"kind": "tuned"}},
    "criteria": [{"kind": "noninferior", "measure": "tuned", "a": "w/adam", "b": "w/sgd", "direction": "greater",
                  "margin": 0.01}],
    "figure": {"kind": "comparison"}}


def test_a_study_built_on_a_comparison_has_an_arm_per_workload_and_contender():
    spec = spec_from_dict("compared", COMPARED)
    assert [a.name for a in spec.arms] == ["w/sgd", "w/adam", "r/sgd", "r/adam"]
    assert spec.arm("r/adam").compared == ("r", "adam") and spec.seeds == 3
    tuned = spec.measures["tuned"]
    assert tuned["at"] == "best" and tuned["columns"]["r/sgd"] == ["val_loss", False]
    assert tuned["columns"]["w/adam"] == ["val_acc", True]


@pytest.mark.parametrize("change, words", [
    ({"arms": {"a": []}}, "arms comes from the comparison"),
    ({"seeds": 4}, "seeds comes from the comparison"),
    ({"criteria": [{"kind": "noninferior", "measure": "tuned", "a": "w/adam", "b": "w/sgd", "direction": "greater"}]},
     "noninferior needs a margin > 0"),
    ({"criteria": [{"kind": "noninferior", "measure": "tuned", "a": "w/adam", "b": "w/sgd", "margin": 0.1}]},
     "direction must be greater or less"),
    ({"comparison": {**COMPARED["comparison"], "protocol": {"tuning": "random"}}}, "protocol tuning"),
])
def test_a_bad_comparison_study_is_one_config_error(change, words):
    with pytest.raises(ConfigError, match=words):
        spec_from_dict("bad", {**COMPARED, **change})


def test_tuned_measures_and_the_comparison_figure_need_a_comparison():
    with pytest.raises(ConfigError, match="tuned measures a study built on a comparison"):
        spec_from_dict("bad", {**MINIMAL, "measures": {"acc": {"kind": "tuned"}}})
    with pytest.raises(ConfigError, match="figure kind comparison needs"):
        spec_from_dict("bad", {**MINIMAL, "figure": {"kind": "comparison"}})
