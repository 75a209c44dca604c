"""A large input costs time in proportion to its size, not a Hydra composition per value: a
categorical space of thousands of values for one config key is checked with one composition
per kind of value (a number, a word, ...) and the rest against the key's spec, and a bad
value anywhere in it is still named in one line."""
from __future__ import annotations

import pytest

from optlab.errors import ConfigError
from optlab.sweep.build import validate
from optlab.sweep.spec import spec_from_dict

BASE = ["data=digits", "model=mlp", "model.depth=1"]


@pytest.fixture
def compositions(monkeypatch):
    """How many times Hydra composes a config while a spec is checked."""
    import optlab.config.compose as compose_module

    count, real = [0], compose_module.compose

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(compose_module, "compose", counting)
    monkeypatch.setattr(compose_module, "_COMPOSERS", {})  # no composition kept from an earlier test
    return count


def spec_with(space: dict):
    return spec_from_dict({"study": "big", "sampler": "random", "base": BASE, "space": space})


def test_ten_thousand_values_of_one_key_take_one_composition(compositions):
    validate(spec_with({"optimizer.lr": [round(1e-4 * (i + 1), 8) for i in range(10_000)],
                        "optimizer": ["sgd", "adam"]}))
    assert compositions[0] == 2  # one per optimizer; the 10,000 lrs ride along


def test_a_bad_value_deep_in_a_large_space_is_still_named(compositions):
    lrs = [round(1e-4 * (i + 1), 8) for i in range(10_000)]
    lrs[7_777] = -0.5
    with pytest.raises(ConfigError, match=r"space 'optimizer.lr': optimizer.lr=-0.5: must be > 0"):
        validate(spec_with({"optimizer.lr": lrs}))
    assert compositions[0] == 1


@pytest.mark.parametrize("choices, named", [([0.1, 0.2, "fast"], "optimizer.lr=fast"),
                                            ([0.1, "1e-2", "0.2,0.3"], "optimizer.lr=0.2,0.3")])
def test_values_of_another_kind_are_composed_themselves(compositions, choices, named):
    with pytest.raises(ConfigError, match=named):
        validate(spec_with({"optimizer.lr": choices}))
