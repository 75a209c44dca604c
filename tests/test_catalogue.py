"""Every option of every group: listed with a description, and trained for one tiny epoch."""
import math

import pytest

from runner.config.catalogue import options
from runner.config.compose import GROUPS, group_options
from runner.training.loop import train

# Options that need files on disk are covered by tests/test_datasets_disk.py.
FROM_DISK = {"mnist", "fashion_mnist", "cifar10", "cifar100", "csv", "npz"}
# What each option needs beside it to make sense (image models on images, regression pairs).
COMPANIONS = {
    ("model", "resnet"): ["data=shapes", "data.n_samples=64", "model.blocks=1", "model.width=4"],
    ("model", "cnn"): ["model.channels=4", "model.depth=2"],
    ("model", "linear"): ["data=linreg"],
    ("data", "linreg"): ["model=linear"],
    ("data", "shapes"): ["data.n_samples=64", "model=cnn", "model.channels=4", "model.depth=2"],
    ("norm", "instance"): ["model=cnn", "model.channels=4", "model.depth=2"],
    ("norm", "group"): ["model=cnn", "model.channels=4", "model.depth=2", "norm.groups=2"],
}
SMOKED_ELSEWHERE = {"optimizer", "schedule", "batch", "augment"}  # each test file trains every option


def cases():
    for group in GROUPS:
        if group in SMOKED_ELSEWHERE:
            continue
        for option in group_options(group):
            if not (group == "data" and option in FROM_DISK):
                yield group, option


def test_every_option_is_listed_with_a_description():
    for group in GROUPS:
        listed = options(group)
        assert [o.name for o in listed] == group_options(group)
        for option in listed:
            assert option.description, f"{group}/{option.name}.yaml needs a leading comment"


def test_init_descriptions_say_whether_a_rule_takes_a_gain_and_its_default():
    """`optlab list init` shows the description and the keys: the gain key is there exactly for
    the rules that scale by one, and the description names its default and the opt-in."""
    listed = options("init")
    with_gain = {o.name for o in listed if "gain" in o.defaults}
    assert with_gain == {"xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform", "orthogonal"}
    for option in listed:
        if option.name in with_gain:
            default = "null" if option.defaults["gain"] is None else "1"
            assert f"init.gain: {default} by default" in option.description
            assert "`activation`" in option.description
        else:
            assert "No gain." in option.description


@pytest.mark.parametrize("group, option", list(cases()))
def test_every_option_trains_one_tiny_epoch(compose_cfg, group, option):
    result = train(compose_cfg(f"{group}={option}", "trainer.epochs=1", *COMPANIONS.get((group, option), [])))
    assert result.status == "completed"
    assert math.isfinite(result.summary["final_train_loss"])


def test_readme_table_names_every_option():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for group in GROUPS:
        if group in ("regularize", "trainer", "diagnostics"):
            continue
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{group}` |"))
        for option in group_options(group):
            assert f"`{option}`" in row, f"README's table misses {group}={option}"
