"""Every built-in option YAML declares exactly its spec's keys and defaults, and leaves it the description."""
import pytest

from optlab.config.catalogue import file_specs, file_values, leading_comment, options
from optlab.config.compose import GROUPS, builtin_config_dir, group_options
from optlab.config.specs import every_spec, named_registries


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
