"""Every option of every group: listed with a description (a user's files too), and trained for one tiny epoch."""
import csv
import io
import math

import pytest
from testkit import REPO, user_option

from optlab.config.catalogue import options
from optlab.config.compose import GROUPS, group_options
from optlab.config.specs import every_spec, named_registries
from optlab.errors import ConfigError
from optlab.training.api import train

SMOKED_ELSEWHERE = {"optimizer", "schedule", "batch", "augment"}  # each test file trains every option
# Small sizes for speed, wherever the chosen model or data takes the key (8 divides norm.groups' default).
SMALL = {"model": {"width": 8, "channels": 8, "depth": 2, "blocks": 1}, "data": {"n_samples": 200}}
DEFAULTS = {"data": "digits", "model": "mlp"}  # conf/config.yaml's


def spec_of(group: str, name: str):
    specs = every_spec(group)
    return specs[0] if len(specs) == 1 else next(s for s in specs if s.name == name)


def first(group: str, **flags) -> str:
    """The first option of the group whose spec has these flags."""
    return next(s.name for s in every_spec(group) if all(getattr(s, f) == v for f, v in flags.items()))


def companions(group: str, name: str) -> list[str]:
    """What an option needs beside it, read from its spec's flags (a norm of feature maps needs
    a conv model, an image model image data, a regression model regression data), then small
    sizes for whatever model and data that makes."""
    spec, chosen = spec_of(group, name), {**DEFAULTS, group: name}
    if getattr(spec, "needs_feature_maps", False):
        chosen["model"] = first("model", needs_images=True)
    if group == "model" and spec.regression:
        chosen["data"] = first("data", regression=True, from_disk=False)
    if spec_of("model", chosen["model"]).needs_images and not spec_of("data", chosen["data"]).images:
        chosen["data"] = first("data", images=True, from_disk=False)
    needs = [f"{g}={n}" for g, n in chosen.items() if g != group and n != DEFAULTS[g]]
    return needs + [f"{g}.{key}={value}" for g in SMALL for key, value in SMALL[g].items()
                    if key in spec_of(g, chosen[g]).key_names()]


def cases():
    for group in GROUPS:
        if group in SMOKED_ELSEWHERE:
            continue
        for option in group_options(group):
            # options that read files are covered by tests/data/test_disk.py; your own
            # components (custom) by tests/test_registry.py, with a user's package
            if not (group == "data" and spec_of(group, option).from_disk) and option != "custom":
                yield group, option


def test_companions_follow_the_spec_flags():
    assert companions("norm", "instance")[0] == "model=cnn"
    assert companions("model", "linear")[0] == "data=linreg"
    assert companions("model", "resnet") == ["model.width=8", "model.blocks=1"]  # digits are images already
    assert companions("norm", "batch") == ["model.width=8", "model.depth=2"]


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
    result = train(compose_cfg(f"{group}={option}", "trainer.epochs=1", *companions(group, option)))
    assert result.status == "completed"
    assert math.isfinite(result.summary["final_train_loss"])


def test_the_train_pages_group_table_names_every_option():
    page = (REPO / "docs" / "train.md").read_text()
    for group in GROUPS:
        if group in ("regularize", "trainer", "diagnostics"):
            continue
        row = next(line for line in page.splitlines() if line.startswith(f"| `{group}` |"))
        for option in group_options(group):
            assert f"`{option}`" in row, f"docs/train.md's table misses {group}={option}"


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


def test_missing_defaults_are_the_keys_a_saved_config_lacks():
    from omegaconf import OmegaConf

    from optlab.config.catalogue import missing_defaults
    from optlab.config.compose import compose

    tree = OmegaConf.to_container(compose(["optimizer=adam", "augment=[flip]"]), resolve=True)
    assert missing_defaults(tree) == {}  # today's config has every key
    del tree["regularize"], tree["trainer"]["freeze"], tree["augment"]["flip"]["p"]
    tree["optimizer"]["lr_scale"] = {"head": 10.0}  # set as a mapping: not missing
    assert missing_defaults(tree) == {
        "regularize.l1": 0.0, "regularize.l2": 0.0, "regularize.clip_norm": None, "regularize.clip_value": None,
        "regularize.label_smoothing": 0.0, "regularize.dropout": None, "trainer.freeze": [], "augment.flip.p": 0.5}
