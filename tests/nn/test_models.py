"""Model builders: shapes, structure, the residual math, and every model YAML on disk."""
import math

import pytest
import torch
import torch.nn as nn

from optlab.config.compose import as_plain, builtin_config_dir
from optlab.errors import ConfigError
from optlab.nn.layers import NORMS
from optlab.nn.models import Block, Network, ResidualUnit, build_model


def cfg_for(model: dict, norm: str = "none", activation: str = "relu", dropout=None) -> dict:
    return {"model": model, "norm": NORMS.get(norm).defaults(),
            "activation": {"name": activation}, "data": {"name": "test"}, "regularize": {"dropout": dropout}}


def blocks(model: nn.Module) -> list[Block]:
    return [m for m in model.modules() if isinstance(m, Block)]


def test_affine_models_compute_one_affine_map_of_the_flattened_input():
    for name in ("logistic", "linear"):
        model = build_model(cfg_for({"name": name}), (2, 3), 4)
        x = torch.randn(5, 2, 3)
        expected = x.reshape(5, 6) @ model.head.weight.T + model.head.bias
        assert torch.allclose(model(x), expected, atol=1e-6)
        assert not blocks(model)


def test_deep_narrow_mlp_builds_and_passes_gradients_to_its_first_layer():
    model = build_model(cfg_for({"name": "mlp", "depth": 20, "width": 16, "dropout": 0.0}, "batch", "tanh"), (10,), 3)
    assert len(blocks(model)) == 20
    assert all(isinstance(b[0], nn.Linear) and b[0].out_features == 16 for b in blocks(model))
    out = model(torch.randn(8, 10))
    out.sum().backward()
    assert out.shape == (8, 3)
    assert torch.isfinite(blocks(model)[0][0].weight.grad).all()


@pytest.mark.parametrize("override, rate", [(None, 0.1), (0.5, 0.5)])
def test_mlp_dropout_follows_the_model_unless_regularize_overrides_it(override, rate):
    model = build_model(cfg_for({"name": "mlp", "depth": 2, "width": 8, "dropout": 0.1}, dropout=override), (4,), 2)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [rate, rate]


def test_cnn_doubles_channels_and_ends_in_a_linear_head():
    model = build_model(cfg_for({"name": "cnn", "channels": 4, "depth": 3, "dropout": 0.0}, "batch"), (1, 8, 8), 10)
    assert [b[0].out_channels for b in blocks(model)] == [4, 8, 16]
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 16
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


RESNET = {"name": "resnet", "blocks": 1, "width": 4, "dropout": 0.0}


def test_resnet_maps_a_batch_of_32x32_images_to_class_logits():
    model = build_model(cfg_for(RESNET, "batch"), (3, 32, 32), 10)
    assert isinstance(model, Network)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_stages_double_the_width_and_halve_the_resolution():
    model = build_model(cfg_for({**RESNET, "blocks": 2}), (3, 32, 32), 10)
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    shapes = []
    for unit in units:
        unit.register_forward_hook(lambda module, inputs, out: shapes.append(tuple(out.shape[1:])))
    model(torch.randn(1, 3, 32, 32))
    assert shapes == [(4, 32, 32)] * 2 + [(8, 16, 16)] * 2 + [(16, 8, 8)] * 2
    assert model.head.in_features == 16


def test_resnet20_has_the_papers_layer_count():
    model = build_model(cfg_for({"name": "resnet", "blocks": 3, "width": 16, "dropout": 0.0}), (3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 20  # 19 3x3 convs and the linear head


def test_residual_unit_is_identity_plus_its_branch():
    torch.manual_seed(0)
    unit = ResidualUnit(4, 4, 1, cfg_for(RESNET, "batch"), 0.0).eval()
    x = torch.randn(2, 4, 6, 6)
    branch = unit.conv(unit.block(unit.pre(x)))
    assert torch.allclose(unit(x), x + branch, atol=1e-6)
    with torch.no_grad():
        unit.conv.weight.zero_()
        unit.conv.bias.zero_()
    assert torch.allclose(unit(x), x)


def test_resnet_blocks_follow_norm_position():
    model = build_model(cfg_for(RESNET, "batch"), (3, 8, 8), 10)
    model_post = build_model({**cfg_for(RESNET), "norm": NORMS.get("batch").defaults(position="post")}, (3, 8, 8), 10)
    assert isinstance(blocks(model)[0][1], nn.BatchNorm2d)
    assert isinstance(blocks(model_post)[0][1], nn.ReLU) and isinstance(blocks(model_post)[0][2], nn.BatchNorm2d)


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_conv_models_refuse_tabular_data(name):
    with pytest.raises(ConfigError, match=f"model={name} needs image data"):
        build_model(cfg_for({**RESNET, "name": name, "channels": 4, "depth": 1}), (2,), 2)


# ---------------------------------------------------------------- every YAML on disk

SMALL = {"mlp": ["model.width=8"], "cnn": ["model.channels=4", "model.depth=2"],
         "resnet": ["model.width=4", "model.blocks=1"]}


def model_options() -> list[str]:
    return sorted(p.stem for p in (builtin_config_dir() / "model").glob("*.yaml") if p.stem != "custom")  # test_registry.py


@pytest.mark.parametrize("option", model_options())
def test_every_model_yaml_composes_and_builds(compose_cfg, option):
    cfg = as_plain(compose_cfg(f"model={option}", *SMALL.get(option, [])))
    model = build_model(cfg, (3, 8, 8), 10)
    assert isinstance(model, Network) and isinstance(model.head, nn.Linear)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert math.isfinite(model(torch.randn(2, 3, 8, 8)).sum().item())


def test_depth_zero_is_a_linear_model(compose_cfg):
    from optlab.nn.models import build_model

    model = build_model(dict(compose_cfg("model=mlp", "model.depth=0")), (1, 8, 8), 10)
    assert [type(m).__name__ for m in model.modules() if len(list(m.parameters(recurse=False)))] == ["Linear"]
