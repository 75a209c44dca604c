"""Weight and bias initializers checked against their formulas."""
import math

import pytest
import torch
import torch.nn as nn

from runner.config import as_plain, builtin_config_dir
from runner.errors import ConfigError
from runner.init import (BIAS_INITS, WEIGHT_INITS, InitContext, fans, init_layers, initialize,
                         output_variance)
from runner.models import build_model

BIG = (300, 500)  # 150k samples: sample std within ~0.5% of the true one
TANH_GAIN = 5 / 3


def drawn(rule: str, shape=BIG, act_gain: float = 1.0, **cfg) -> torch.Tensor:
    """A weight drawn by `rule` with init keys cfg, for an activation whose gain is act_gain."""
    torch.manual_seed(0)
    weight = torch.empty(shape)
    WEIGHT_INITS.get(rule)(weight, {"name": rule, **cfg}, act_gain)
    return weight


def assert_uniform(weight: torch.Tensor, r: float) -> None:
    assert weight.abs().max() <= r
    assert weight.abs().max() > 0.99 * r  # fills the interval, not a narrower one
    assert weight.var().item() == pytest.approx(r * r / 3, rel=0.02)


def assert_normal(weight: torch.Tensor, std: float) -> None:
    assert weight.mean().item() == pytest.approx(0.0, abs=0.01 * std)
    assert weight.std().item() == pytest.approx(std, rel=0.02)


# ---------------------------------------------------------------- weight rules

def test_fans_of_linear_and_conv_weights():
    assert fans(torch.empty(3, 5)) == (5, 3)
    assert fans(torch.empty(8, 4, 3, 3)) == (36, 72)


def test_zeros_and_constant():
    assert (drawn("zeros", (4, 6)) == 0).all()
    assert (drawn("constant", (4, 6), value=0.3) == 0.3).all()


def test_normal_is_the_fixed_small_gaussian():
    assert_normal(drawn("normal", std=0.01), 0.01)


def test_uniform_draws_from_minus_r_to_r():
    assert_uniform(drawn("uniform", r=0.2), 0.2)


def test_lecun_uniform_uses_r_one_over_sqrt_fan_in():
    assert_uniform(drawn("lecun_uniform", act_gain=TANH_GAIN), 1 / math.sqrt(500))


def test_lecun_normal_has_std_one_over_sqrt_fan_in():
    assert_normal(drawn("lecun_normal", act_gain=TANH_GAIN), 1 / math.sqrt(500))


def test_xavier_uniform_bound_and_variance():
    assert_uniform(drawn("xavier_uniform", act_gain=TANH_GAIN), TANH_GAIN * math.sqrt(6 / 800))


def test_xavier_normal_std():
    assert_normal(drawn("xavier_normal", act_gain=TANH_GAIN), TANH_GAIN * math.sqrt(2 / 800))


@pytest.mark.parametrize("mode, fan", [("fan_in", 500), ("fan_out", 300)])
def test_kaiming_normal_std_is_gain_over_sqrt_fan(mode, fan):
    assert_normal(drawn("kaiming_normal", act_gain=math.sqrt(2), mode=mode), math.sqrt(2) / math.sqrt(fan))


@pytest.mark.parametrize("mode, fan", [("fan_in", 16 * 9), ("fan_out", 64 * 9)])
def test_kaiming_uniform_on_a_conv_kernel_uses_the_receptive_field(mode, fan):
    weight = drawn("kaiming_uniform", (64, 16, 3, 3), act_gain=math.sqrt(2), mode=mode)
    assert_uniform(weight, math.sqrt(2) * math.sqrt(3 / fan))


@pytest.mark.parametrize("shape, gain, expected", [((20, 50), None, TANH_GAIN), ((20, 50), 2.0, 2.0),
                                                    ((6, 4, 3, 3), None, TANH_GAIN)])
def test_orthogonal_rows_are_orthonormal_times_gain(shape, gain, expected):
    """init.gain when set, else the activation's gain (tanh here); conv kernels flattened."""
    w = drawn("orthogonal", shape, act_gain=TANH_GAIN, gain=gain).reshape(shape[0], -1)
    assert torch.allclose(w @ w.T, expected ** 2 * torch.eye(shape[0]), atol=1e-5)


def test_unknown_weight_rule_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        WEIGHT_INITS.get("glorot")
    assert all(name in str(info.value) for name in WEIGHT_INITS.names())


# ---------------------------------------------------------------- initialize(): the wiring

def mlp_cfg(init: dict, activation: str = "relu", depth: int = 2, width: int = 8, norm: str = "none") -> dict:
    return {"model": {"name": "mlp", "depth": depth, "width": width, "dropout": 0.0},
            "norm": {"name": norm, "position": "pre"}, "activation": {"name": activation},
            "init": init, "data": {"name": "test"}, "regularize": {}}


def initialized(cfg: dict, input_shape=(6,), out_dim=3, ctx: InitContext | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg, input_shape, out_dim)
    initialize(model, cfg["init"], cfg["activation"], ctx)
    return model


def test_hidden_layers_get_the_activation_gain_and_the_head_gets_one():
    cfg = mlp_cfg({"name": "xavier_normal", "bias": {"name": "zeros"}}, "tanh", depth=1, width=400)
    model = initialized(cfg, (400,), out_dim=400)
    hidden, head = init_layers(model)
    assert_normal(hidden.weight.detach(), TANH_GAIN * math.sqrt(2 / 800))
    assert_normal(head.weight.detach(), math.sqrt(2 / 800))


def test_default_rules_keep_pytorch_initialization():
    cfg = mlp_cfg({"name": "default", "bias": {"name": "default"}})
    torch.manual_seed(0)
    reference = build_model(cfg, (6,), 3)
    model = initialized(cfg)
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize("bias, expected", [({"name": "zeros", "value": 0.0}, 0.0),
                                            ({"name": "constant", "value": 0.1}, 0.1)])
def test_bias_rules_set_every_bias(bias, expected):
    model = initialized(mlp_cfg({"name": "kaiming_normal", "mode": "fan_in", "bias": bias}))
    for layer in init_layers(model):
        assert torch.allclose(layer.bias, torch.full_like(layer.bias, expected))


def test_weight_rules_reach_weight_normalized_layers():
    cfg = mlp_cfg({"name": "constant", "value": 0.5, "bias": {"name": "zeros"}}, norm="weight")
    model = initialized(cfg)
    assert all(torch.allclose(layer.weight, torch.full_like(layer.weight, 0.5)) for layer in init_layers(model))


# ---------------------------------------------------------------- output_prior

LABELS = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
FREQUENCIES = torch.tensor([0.6, 0.3, 0.1])


def test_output_prior_makes_the_initial_softmax_the_class_frequencies():
    cfg = {**mlp_cfg({"name": "zeros", "bias": {"name": "output_prior"}}), "model": {"name": "logistic"}}
    model = initialized(cfg, ctx=InitContext(y_train=LABELS, num_classes=3))
    probabilities = model(torch.randn(5, 6)).softmax(dim=1)
    assert torch.allclose(probabilities, FREQUENCIES.expand(5, 3), atol=1e-6)


def test_output_prior_with_small_weights_is_close_and_zeroes_hidden_biases():
    cfg = mlp_cfg({"name": "normal", "std": 0.01, "bias": {"name": "output_prior"}})
    model = initialized(cfg, ctx=InitContext(y_train=LABELS, num_classes=3))
    probabilities = model(torch.randn(50, 6)).softmax(dim=1)
    assert torch.allclose(probabilities.mean(dim=0), FREQUENCIES, atol=1e-3)
    assert all((layer.bias == 0).all() for layer in init_layers(model)[:-1])


def test_output_prior_for_regression_starts_at_the_mean_target():
    cfg = {**mlp_cfg({"name": "zeros", "bias": {"name": "output_prior"}}), "model": {"name": "linear"}}
    targets = torch.tensor([1.0, 2.0, 6.0])
    model = initialized(cfg, out_dim=1, ctx=InitContext(y_train=targets, num_classes=0))
    assert torch.allclose(model(torch.randn(4, 6)), torch.full((4, 1), 3.0))


def test_output_prior_keeps_a_class_missing_from_training_finite():
    cfg = {**mlp_cfg({"name": "zeros", "bias": {"name": "output_prior"}}), "model": {"name": "logistic"}}
    model = initialized(cfg, ctx=InitContext(y_train=torch.tensor([0, 0, 0, 1, 1]), num_classes=3))
    # counts (3, 2, 0): the missing class counts once, so the priors are (3, 2, 1) / 6
    assert torch.allclose(model.head.bias, torch.log(torch.tensor([3, 2, 1]) / 6))


# ---------------------------------------------------------------- LSUV

@pytest.mark.parametrize("norm, activation", [("none", "tanh"), ("weight", "relu"), ("batch", "elu")])
def test_lsuv_gives_every_layer_unit_output_variance_on_the_batch(norm, activation):
    torch.manual_seed(1)
    x = torch.randn(256, 12) * 4 + 1
    cfg = mlp_cfg({"name": "lsuv", "bias": {"name": "default"}}, activation, depth=4, width=32, norm=norm)
    model = initialized(cfg, (12,), ctx=InitContext(x_batch=x))
    assert model.training
    model.eval()
    for layer in init_layers(model):
        assert output_variance(model, layer, x) == pytest.approx(1.0, rel=1e-3)


def test_lsuv_needs_a_batch():
    with pytest.raises(ConfigError, match="init=lsuv needs a training batch"):
        initialized(mlp_cfg({"name": "lsuv", "bias": {"name": "zeros"}}))


# ---------------------------------------------------------------- every YAML on disk

def init_options() -> list[str]:
    return sorted(p.stem for p in (builtin_config_dir() / "init").glob("*.yaml"))


@pytest.mark.parametrize("option", init_options())
def test_every_init_yaml_composes_and_initializes_a_model(compose_cfg, option):
    cfg = as_plain(compose_cfg(f"init={option}", "model.width=8", "init.bias.name=output_prior"))
    assert cfg["init"]["name"] in WEIGHT_INITS and set(cfg["init"]["bias"]) == {"name", "value"}
    x = torch.randn(16, 1, 8, 8)
    model = initialized(cfg, (1, 8, 8), 10, InitContext(x_batch=x, y_train=torch.arange(10), num_classes=10))
    assert torch.isfinite(model(x)).all()


def test_bias_is_overridable_as_name_and_value(compose_cfg):
    cfg = compose_cfg("init=xavier_uniform", "init.bias.name=constant", "init.bias.value=0.1")
    assert cfg.init.bias.name in BIAS_INITS and cfg.init.bias.value == 0.1
    with pytest.raises(ConfigError, match="init.bias.value=big: expected a number"):
        compose_cfg("init.bias.value=big")
