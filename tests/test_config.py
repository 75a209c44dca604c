import pytest

from runner.config import GROUPS, compose, group_options
from runner.errors import ConfigError


def test_default_config_composes_every_group():
    cfg = compose([])
    for group in GROUPS:
        assert group in cfg
    assert cfg.data.name == "digits"


def test_overrides_reach_nested_values():
    cfg = compose(["model=mlp", "model.depth=4", "optimizer=adam", "optimizer.lr=3e-4", "trainer.epochs=20"])
    assert (cfg.model.depth, cfg.optimizer.name, cfg.optimizer.lr, cfg.trainer.epochs) == (4, "adam", 3e-4, 20)


@pytest.mark.parametrize("override, fragment", [
    ("optimizer=adamm", "optimizer=adamm: unknown optimizer; choose from: "),
    ("optimizer.lrr=1", "optimizer.lrr: unknown key"),
    ("optimizer.lr=abc", "optimizer.lr=abc: expected a number"),
    ("optimizer.lr=0", "optimizer.lr=0: must be > 0"),
    ("optimizer.lr=-1", "optimizer.lr=-1: must be > 0"),
    ("batch.size=0", "batch.size=0: must be >= 1"),
    ("trainer.val_fraction=1.0", "trainer.val_fraction=1.0: must be in (0, 1)"),
    ("trainer.val_fraction=0", "trainer.val_fraction=0: must be in (0, 1)"),
    ("trainer.epochs=-1", "trainer.epochs=-1: must be >= 0"),
    ("model.depth=2.5", "model.depth=2.5: expected an integer"),
    ("trainer.progress=maybe", "trainer.progress=maybe: expected a boolean"),
    ("trainer.device=tpu", "trainer.device=tpu: choose from"),
    ("nonsense", "must look like key=value"),
])
def test_bad_input_names_the_key(override, fragment):
    with pytest.raises(ConfigError) as info:
        compose([override])
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_group_option_lists_valid_choices():
    with pytest.raises(ConfigError) as info:
        compose(["norm=bogus"])
    for option in group_options("norm"):
        assert option in str(info.value)


def test_user_config_dir_adds_and_overrides_options(tmp_path):
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "mysgd.yaml").write_text("name: sgd\nlr: 0.05\nmomentum: 0.0\nnesterov: false\nweight_decay: 0.0\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mlp.yaml").write_text("name: mlp\ndepth: 1\nwidth: 7\ndropout: 0.0\n")
    cfg = compose(["optimizer=mysgd"], config_dir=str(tmp_path))
    assert cfg.optimizer.lr == 0.05
    assert cfg.model.width == 7  # the user's mlp.yaml replaces the built-in one
    assert "mysgd" in group_options("optimizer", str(tmp_path))
