"""Specs: defaults fill every key and refuse unknown ones; null follows the default, or a key's kind."""
import pytest

from runner.config.specs import named_registries
from runner.optim.schedules import SCHEDULES
from runner.registry import Key


def test_spec_defaults_fill_every_key_and_refuse_unknown_ones():
    assert SCHEDULES.get("cosine").defaults(min_lr=0.01) == {
        "name": "cosine", "min_lr": 0.01, "warmup_epochs": 0, "interval": "step"}
    with pytest.raises(KeyError, match="gamma: not a key of cosine"):
        SCHEDULES.get("cosine").defaults(gamma=0.5)
    assert named_registries()["init"].get("constant").defaults(**{"bias.name": "constant"})["bias"] == {
        "name": "constant", "value": 0.0}


def test_null_follows_the_default_and_kind_types_a_null_default():
    lr, max_lr = Key("lr", 0.1), Key("max_lr", None, kind=float)
    assert lr.complaint(None).startswith("expected a number, not null")
    assert max_lr.complaint(None) is None and max_lr.complaint("high") == "expected a number"
