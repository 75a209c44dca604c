"""Composing conf/ with a user's config dir, and Hydra's override grammar as typed."""
from __future__ import annotations

import re

import pytest

from optlab.config.compose import GROUPS, compose, group_options, is_bookkeeping
from optlab.errors import ConfigError


def test_default_config_composes_every_group():
    cfg = compose([])
    for group in GROUPS:
        assert group in cfg
    assert cfg.data.name == "digits"


def test_overrides_reach_nested_values():
    cfg = compose(["model=mlp", "model.depth=4", "optimizer=adam", "optimizer.lr=3e-4", "trainer.epochs=20"])
    assert (cfg.model.depth, cfg.optimizer.name, cfg.optimizer.lr, cfg.trainer.epochs) == (4, "adam", 3e-4, 20)


def test_unknown_group_option_lists_valid_choices():
    with pytest.raises(ConfigError) as info:
        compose(["norm=bogus"])
    for option in group_options("norm"):
        assert option in str(info.value)


def test_user_config_dir_adds_and_overrides_options(tmp_path):
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "mysgd.yaml").write_text("name: sgd\nlr: 0.05\nweight_decay: 0.0\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mlp.yaml").write_text("name: mlp\ndepth: 1\nwidth: 7\ndropout: 0.0\n")
    cfg = compose(["optimizer=mysgd"], config_dir=str(tmp_path))
    assert cfg.optimizer.lr == 0.05
    assert cfg.model.width == 7  # the user's mlp.yaml replaces the built-in one
    assert "mysgd" in group_options("optimizer", str(tmp_path))


def test_tilde_deletes_a_key_whose_default_is_null(compose_cfg):
    from optlab.training.api import train

    assert "clip_norm" not in compose(["~regularize.clip_norm"]).regularize
    assert "clip_norm" not in compose(["regularize.clip_norm=1.0", "~regularize.clip_norm=1.0"]).regularize
    result = train(compose_cfg("~regularize.clip_norm", "model.width=8", "trainer.epochs=1"))
    assert result.status == "completed"


@pytest.mark.parametrize("override, fragment", [
    ("~optimizer.lr", "~optimizer.lr: optimizer.lr is required"),
    ("~optimizer.lr=0.1", "~optimizer.lr=0.1: optimizer.lr is required"),
    ("~init.bias.name", "~init.bias.name: init.bias.name is required"),
    ("~optimizer.lr=0.5", "optimizer.lr is 0.1, not 0.5"),
    ("~augment", "~augment: every config group is required; choose augment=OPTION from: crop"),
    ("~optimizer.momentum", "optimizer.momentum: unknown key"),
])
def test_tilde_on_a_required_or_missing_key_names_it(override, fragment):
    with pytest.raises(ConfigError) as info:
        compose([override])
    assert fragment in str(info.value)
    assert "must look like key=value" not in str(info.value)


def test_a_sweep_without_multirun_says_it_needs_m():
    for override in ("optimizer=sgd,adam", "optimizer.lr=0.1,0.2", "trainer.seed=range(3)"):
        with pytest.raises(ConfigError, match=f"{re.escape(override)}: several values make a sweep, which needs -m"):
            compose([override])


@pytest.mark.parametrize("override", ["hydra.run.dir=x", "hydra.job.chdir=true", "hydra/launcher=basic"])
def test_hydra_job_settings_are_refused_naming_optlabs_own(override):
    with pytest.raises(ConfigError) as info:
        compose([override])
    message = str(info.value)
    assert message.startswith(f"{override}: optlab does not use Hydra's job settings")
    assert "trainer.out_dir" in message and "trainer.name" in message


def options_with_key(group: str, key: str) -> list[str]:
    from optlab.config.catalogue import options
    from optlab.config.compose import flatten

    return [o.name for o in options(group) if key in dict(flatten(o.defaults))]


def test_an_unknown_key_names_the_options_that_have_it_and_the_valid_keys():
    with pytest.raises(ConfigError) as info:
        compose(["optimizer=adam", "optimizer.momentum=0.9"])
    having = [f"optimizer={name}" for name in options_with_key("optimizer", "momentum")]
    assert len(having) >= 3 and "optimizer=adam" not in having
    assert str(info.value) == (f"optimizer.momentum: unknown key, not a key of optimizer=adam; "
                               f"{', '.join(having[:-1])} and {having[-1]} have it; "
                               f"the keys of optimizer=adam: lr, betas, eps, weight_decay, lr_scale")


@pytest.mark.parametrize("overrides, fragment", [
    (["optimizer.lrr=1"], "optimizer.lrr: unknown key, not a key of optimizer=sgd; "
                          "did you mean optimizer.lr? the keys of optimizer=sgd: lr, weight_decay"),
    (["+optimizer.momentum=0.9"], "not a key of optimizer=sgd; optimizer=momentum, "),
    (["augment.flip.p=0.3"], "augment.flip.p: unknown key, not a key of augment=none; augment=flip has it"),
    (["augment=[crop,noise]", "augment.cutout.size=3"], "not a key of augment=[crop,noise]; augment=cutout has it; "
                                                      "the keys of augment=[crop,noise]: crop.padding, noise.std"),
])
def test_unknown_keys_are_explained_whichever_way_they_are_added(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        compose(overrides)
    assert fragment in str(info.value)


def test_user_options_count_among_the_options_that_have_a_key(tmp_path):
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "lion.yaml").write_text("name: adamw\nlr: 0.0001\nbetas: [0.9, 0.99]\n")
    with pytest.raises(ConfigError, match="; optimizer=adam, .*optimizer=adamw and optimizer=lion have it;"):
        compose(["optimizer=sgd", "optimizer.betas=[0.9,0.9]"], config_dir=str(tmp_path))


def test_a_list_of_options_is_for_augment_only():
    with pytest.raises(ConfigError, match=r"optimizer=\[sgd,adam\]: optimizer takes one option"):
        compose(["optimizer=[sgd,adam]"])
    with pytest.raises(ConfigError, match=r"augment=\[\]: choose at least one option"):
        compose(["augment=[]"])


@pytest.mark.parametrize("key, bookkeeping", [
    ("trainer.name", True), ("trainer.out_dir", True), ("trainer.progress", True), ("trainer.log_every", True),
    ("trainer.checkpoint_every_s", True), ("trainer.device", True), ("trainer.data_on_device", True),
    ("diagnostics.every", True), ("trainer.precision", False), ("trainer.seed", False), ("trainer.epochs", False),
    ("optimizer.lr", False)])
def test_bookkeeping_keys_do_not_change_what_is_learned(key, bookkeeping):
    assert is_bookkeeping(key) == bookkeeping
