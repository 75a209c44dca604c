"""Registry specs own every option: the YAMLs match them, validation asks them, `optlab list`
shows their words, and a user's option file is checked against the spec its `name:` names."""
import csv
import io

import pytest

from runner.config.catalogue import file_specs, file_values, leading_comment, options
from runner.config.compose import GROUPS, builtin_config_dir, compose, group_options
from runner.config.specs import every_spec, named_registries
from runner.errors import ConfigError
from runner.optim.schedules import SCHEDULES
from runner.registry import Key


def builtin_files():
    for group in GROUPS:
        for path in sorted((builtin_config_dir() / group).glob("*.yaml")):
            yield group, path


def typed(tree):
    """The tree with every leaf paired with its type, in order: 60 and 60.0 differ, and so do
    key orders."""
    if isinstance(tree, dict):
        return [(key, typed(value)) for key, value in tree.items()]
    if isinstance(tree, list):
        return [typed(v) for v in tree]
    return type(tree).__name__, tree


def spec_mapping(group: str, path) -> dict:
    """What the specs of the file's options declare, placed as the file's values are."""
    return {entry: spec.defaults() for entry, spec in file_specs(group, path)} if group == "augment" \
        else file_specs(group, path)[0][1].defaults()


@pytest.mark.parametrize("group, path", list(builtin_files()), ids=lambda x: getattr(x, "stem", x))
def test_every_option_yaml_declares_exactly_its_specs_keys_and_defaults(group, path):
    assert typed(file_values(group, path)) == typed(spec_mapping(group, path))
    if group in named_registries():
        assert file_values(group, path)["name"] == path.stem  # conf/optimizer/adam.yaml is adam's


@pytest.mark.parametrize("group", GROUPS)
def test_every_spec_has_a_builtin_yaml_and_every_yaml_a_spec(group):
    names = [spec.name for spec in every_spec(group)]
    if group in ("regularize", "trainer", "diagnostics"):
        assert names == [group] and group_options(group)  # keys only: one spec, any file name
    else:
        assert names == group_options(group)


@pytest.mark.parametrize("group, path", list(builtin_files()), ids=lambda x: getattr(x, "stem", x))
def test_builtin_yamls_leave_the_description_to_the_spec(group, path):
    assert leading_comment(path) == ""
    (listed,) = [o for o in options(group) if o.name == path.stem]
    assert listed.description == " ".join(spec.description for _, spec in file_specs(group, path))
    assert listed.description


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


# ---------------------------------------------------------------- validation asks the spec, one line per mistake

@pytest.mark.parametrize("overrides, message", [
    (["data=blobs", "data.cluster_std=0"], "data.cluster_std=0: must be > 0"),
    (["data=shapes", "data.classes=7"], "data.classes=7: must be in [2, 5]"),
    (["data=csv", "data.task=clustering"], "data.task=clustering: choose from: classification, regression"),
    (["data=moons", "data.classes=3"], "data.classes: unknown key, not a key of data=moons; data=blobs, "
                                       "data=shapes and data=spirals have it; the keys of data=moons: n_samples, noise"),
    (["model.width=0"], "model.width=0: must be >= 1"),
    (["model=logistic", "model.width=8"], "model.width: unknown key, not a key of model=logistic; model=mlp and "
                                          "model=resnet have it; the keys of model=logistic: (none)"),
    (["init=normal", "init.std=-1"], "init.std=-1: must be >= 0"),
    (["init=kaiming_normal", "init.mode=fan_avg"], "init.mode=fan_avg: choose from: fan_in, fan_out"),
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
                                                 "the keys of augment=flip: flip.p"),
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


# ---------------------------------------------------------------- a user's option file

def user_option(tmp_path, group: str, name: str, text: str) -> str:
    (tmp_path / group).mkdir(exist_ok=True)
    (tmp_path / group / f"{name}.yaml").write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("name: sgd\nlr: 0.05\nmomentum: 0.9\nweight_decay: 0.0\n",
     "optimizer.momentum: unknown key, not a key of optimizer=my_sgd; optimizer=momentum, optimizer=nesterov and "
     "optimizer=rmsprop have it; the keys of optimizer=my_sgd: lr, weight_decay"),
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


def test_optlab_list_shows_a_user_files_comment_else_its_specs_description(tmp_path, optlab):
    user_option(tmp_path, "optimizer", "my_sgd", "# SGD with a smaller lr for deep nets.\nname: sgd\nlr: 0.01\n"
                                                 "weight_decay: 0.0\n")
    user_option(tmp_path, "optimizer", "quiet_adam", "name: adam\nlr: 0.0003\nbetas: [0.9, 0.999]\neps: 1.0e-8\n"
                                                     "weight_decay: 0.0\n")
    result = optlab("list", "optimizer", "--config-dir", str(tmp_path), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = {row["option"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    adam = named_registries()["optimizer"].get("adam")
    assert rows["my_sgd"]["description"] == "SGD with a smaller lr for deep nets."
    assert rows["quiet_adam"]["description"] == rows["adam"]["description"] == adam.description
    assert rows["quiet_adam"]["keys (defaults)"] == "lr=0.0003 betas=[0.9, 0.999] eps=1e-08 weight_decay=0.0"


def test_a_user_file_naming_no_known_spec_is_named_in_the_listing_error(tmp_path):
    config_dir = user_option(tmp_path, "model", "transformer", "name: transformer\nheads: 4\n")
    with pytest.raises(ConfigError, match=r"transformer.yaml: model.name=transformer: unknown model; choose from: cnn"):
        options("model", config_dir)
