"""Every key checked against the chosen option's spec, a user's option files too; one line per mistake."""
import re

import pytest
from omegaconf import OmegaConf
from testkit import user_option

from optlab.config.compose import GROUPS, compose
from optlab.config.specs import named_registries
from optlab.errors import ConfigError


@pytest.mark.parametrize("override, fragment", [
    ("optimizer=adamm", "optimizer=adamm: unknown optimizer; did you mean adam? choose from: "),
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
    ("trainer.device=tpu", "trainer.device=tpu: did you mean cpu? choose from: auto, cpu"),
    ("nonsense", "must look like key=value"),
])
def test_bad_input_names_the_key(override, fragment):
    with pytest.raises(ConfigError) as info:
        compose([override])
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("key, expected", [
    ("optimizer.lr", "a number"), ("trainer.seed", "an integer"), ("model.depth", "an integer"),
    ("batch.size", "an integer"),
])
def test_null_is_refused_where_the_default_is_a_value(key, expected):
    with pytest.raises(ConfigError) as info:
        compose([f"{key}=null"])
    assert str(info.value).startswith(f"{key}=null: expected {expected}")
    assert "\n" not in str(info.value)


def nullable_keys() -> list[tuple[str, str, str]]:
    """(group, option, dotted key) of every key whose option's YAML default is null."""
    from optlab.config.catalogue import options
    from optlab.config.compose import flatten

    return [(group, option.name, f"{group}.{key}") for group in GROUPS for option in options(group)
            for key, value in flatten(option.defaults)
            if value is None and "_target_" not in option.defaults]  # custom: composes once its function is named


def test_every_key_whose_default_is_null_still_takes_null():
    found = nullable_keys()
    assert {"schedule.max_lr", "regularize.clip_norm", "regularize.clip_value", "init.gain"} <= {k for *_, k in found}
    for group, option, key in found:
        cfg = compose([f"{group}={option}", f"{key}=null"])
        assert OmegaConf.select(cfg, key, default="absent") is None, key


def test_an_interpolation_of_the_wrong_type_shows_what_it_resolved_to():
    with pytest.raises(ConfigError) as info:
        compose(["optimizer.lr=${trainer.name}"])
    assert str(info.value) == "optimizer.lr=${trainer.name} resolves to 'digits-mlp-sgd': expected a number"
    with pytest.raises(ConfigError, match=re.escape("optimizer.lr=${trainer.epochs} resolves to 0: must be > 0")):
        compose(["trainer.epochs=0", "optimizer.lr=${trainer.epochs}"])


@pytest.mark.parametrize("overrides, message", [
    (["data=blobs", "data.cluster_std=0"], "data.cluster_std=0: must be > 0"),
    (["data=shapes", "data.classes=7"], "data.classes=7: must be in [2, 5]"),
    (["data=csv", "data.task=clustering"], "data.task=clustering: choose from: classification, regression"),
    (["data=moons", "data.classes=3"], "data.classes: unknown key, not a key of data=moons; data=blobs, "
                                       "data=shapes and data=spirals have it; the keys of data=moons: n_samples, noise, order, "
                                       "difficulty_from, pacing.start, pacing.epochs, keep_classes, standardize"),
    (["model.width=0"], "model.width=0: must be >= 1"),
    (["model=logistic", "model.width=8"], "model.width: unknown key, not a key of model=logistic; model=mlp and "
                                          "model=resnet have it; the keys of model=logistic: (none)"),
    (["init=normal", "init.std=-1"], "init.std=-1: must be >= 0"),
    (["init=kaiming_normal", "init.mode=fan_avg"], "init.mode=fan_avg: did you mean fan_in? choose from: fan_in, fan_out"),
    (["init.bias.name=ones"], "init.bias.name=ones: choose from: constant, default, output_prior, zeros"),
    (["norm=batch", "norm.momentum=2"], "norm.momentum=2: must be in [0, 1]"),
    (["norm.position=mid"], "norm.position=mid: choose from: pre, post"),
    (["norm=layer", "norm.groups=2"], "norm.groups: unknown key, not a key of norm=layer; norm=group has it; "
                                      "the keys of norm=layer: eps, position"),
    (["activation=elu", "activation.alpha=0"], "activation.alpha=0: must be > 0"),
    (["activation.slope=0.1"], "activation.slope: unknown key, not a key of activation=relu; "
                               "activation=leaky_relu has it; the keys of activation=relu: (none)"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer.betas=[0.9, 1.5]: must be two numbers in [0, 1)"),
    (["schedule=plateau", "schedule.factor=1.5"], "schedule.factor=1.5: must be in (0, 1)"),
    (["schedule.interval=batch"], "schedule.interval=batch: choose from: epoch, step"),
    (["schedule=multistep", "schedule.milestones=[2,-1]"],
     "schedule.milestones=[2, -1]: must be a list of epoch numbers >= 0"),
    (["schedule=onecycle", "schedule.max_lr=high"], "schedule.max_lr=high: expected a number"),
    (["batch=full", "batch.size=3"], "batch.size: unknown key, not a key of batch=full; batch=fixed, "
                                     "batch=increasing and batch=linear_scaling have it; the keys of batch=full: (none)"),
    (["batch=increasing", "batch.factor=0"], "batch.factor=0: must be >= 1"),
    (["augment=flip", "augment.flip.p=2"], "augment.flip.p=2: must be in [0, 1]"),
    (["augment=flip", "augment.flip.padding=1"], "augment.flip.padding: unknown key, not a key of augment=flip; "
                                                 "did you mean augment.flip.p? the keys of augment=flip: flip.p"),
    (["regularize.label_smoothing=1"], "regularize.label_smoothing=1: must be in [0, 1)"),
    (["regularize.clip_norm=0"], "regularize.clip_norm=0: must be > 0"),
    (["trainer.precision=64"], "trainer.precision=64: choose from: 32, bf16, 16"),
    (["trainer.log_every=0"], "trainer.log_every=0: must be >= 1"),
    (["diagnostics.every=0"], "diagnostics.every=0: must be >= 1"),
    (["+diagnostics.depth=2"], "diagnostics.depth: unknown key, not a key of diagnostics=default; "
                               "the keys of diagnostics=default: every, batch_size"),
])
def test_each_family_refuses_unknown_keys_and_values_outside_the_spec_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as info:
        compose(overrides)
    assert str(info.value) == message


@pytest.mark.parametrize("text, message", [
    ("name: sgd\nlr: 0.05\nmomentum: 0.9\nweight_decay: 0.0\n",
     "optimizer.momentum: unknown key, not a key of optimizer=my_sgd; optimizer=momentum, optimizer=nesterov and "
     "optimizer=rmsprop have it; the keys of optimizer=my_sgd: lr, weight_decay, lr_scale"),
    ("name: sgd\nlr: 0.05\n",
     "optimizer.weight_decay: missing; optimizer `name: sgd` needs it (default 0.0; only keys whose default is "
     "null can be left out)"),
    ("name: sgd\nlr: -1\nweight_decay: 0.0\n", "optimizer.lr=-1: must be > 0"),
    ("name: sgd\nlr: fast\nweight_decay: 0.0\n", "optimizer.lr=fast: expected a number"),
    ("name: lion\nlr: 0.001\n", "optimizer.name=lion: unknown optimizer; choose from: "
                                f"{', '.join(named_registries()['optimizer'].names())}"),
])
def test_a_user_option_file_is_checked_against_the_spec_its_name_names(tmp_path, text, message):
    config_dir = user_option(tmp_path, "optimizer", "my_sgd", text)
    with pytest.raises(ConfigError) as info:
        compose(["optimizer=my_sgd"], config_dir=config_dir)
    assert str(info.value) == message


def test_a_user_option_file_with_its_own_defaults_composes(tmp_path):
    config_dir = user_option(tmp_path, "optimizer", "my_sgd", "name: sgd\nlr: 0.05\nweight_decay: 0.001\n")
    cfg = compose(["optimizer=my_sgd", "optimizer.lr=0.2"], config_dir=config_dir)
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.weight_decay) == ("sgd", 0.2, 0.001)


def test_a_user_augment_entry_is_checked_against_its_augmentations_spec(tmp_path):
    config_dir = user_option(tmp_path, "augment", "flip", "# @package augment.flip\np: 1.5\n")
    with pytest.raises(ConfigError, match=r"^augment.flip.p=1.5: must be in \[0, 1\]$"):
        compose(["augment=[crop,flip]"], config_dir=config_dir)
