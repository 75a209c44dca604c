"""Weight and bias initializers checked against their formulas."""
import math

import pytest
import torch
import torch.nn as nn

from optlab.config.compose import as_plain, builtin_config_dir
from optlab.errors import ConfigError
from optlab.nn.init import (
    BIAS_INITS,
    WEIGHT_INITS,
    InitContext,
    activation_gain,
    fans,
    init_layers,
    initialize,
    output_variance,
)
from optlab.nn.layers import ACTIVATIONS, NORMS
from optlab.nn.models import build_model

BIG = (300, 500)  # 150k samples: sample std within ~0.5% of the true one
TANH_GAIN = 5 / 3
RELU = {"name": "relu"}
TANH = {"name": "tanh"}


def drawn(rule: str, shape=BIG, act_gain: float = 1.0, **cfg) -> torch.Tensor:
    """A weight drawn by `rule` with init keys cfg, handed the gain act_gain."""
    torch.manual_seed(0)
    weight = torch.empty(shape)
    spec = WEIGHT_INITS.get(rule)
    spec.draw(weight, spec.defaults(**cfg), act_gain)
    return weight


def initialized_layer(init: dict, activation: dict, shape=BIG) -> torch.Tensor:
    """The weight initialize() gives one linear layer of `shape` (out, in) under this activation."""
    model = nn.Sequential(nn.Linear(shape[1], shape[0]))
    torch.manual_seed(0)
    initialize(model, {"bias": {"name": "zeros"}, **init}, activation)
    return model[0].weight.detach()


def yaml_init(compose_cfg, rule: str, *overrides: str) -> dict:
    """The init section as conf/init/<rule>.yaml (plus overrides) composes it: the defaults."""
    return as_plain(compose_cfg(f"init={rule}", *overrides).init)


def torch_drawn(fill, shape=BIG, **kwargs) -> torch.Tensor:
    """The same draw made by torch.nn.init's own function (same seed, same random stream)."""
    torch.manual_seed(0)
    weight = torch.empty(shape)
    fill(weight, **kwargs)
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


def test_lecun_uniform_has_variance_one_over_fan_in():
    """LeCun et al. 1998 ask for std 1/sqrt(fan_in): r = sqrt(3 / fan_in), not 1/sqrt(fan_in)."""
    assert_uniform(drawn("lecun_uniform", act_gain=TANH_GAIN), math.sqrt(3 / 500))


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


@pytest.mark.parametrize("shape, gain", [((20, 50), 2.0), ((6, 4, 3, 3), TANH_GAIN)])
def test_orthogonal_rows_are_orthonormal_times_gain(shape, gain):
    w = drawn("orthogonal", shape, act_gain=gain).reshape(shape[0], -1)  # conv kernels flattened
    assert torch.allclose(w @ w.T, gain ** 2 * torch.eye(shape[0]), atol=1e-5)


# ---------------------------------------------------------------- the gain each rule defaults to

@pytest.mark.parametrize("rule, torch_fill", [("xavier_normal", nn.init.xavier_normal_),
                                              ("xavier_uniform", nn.init.xavier_uniform_)])
def test_xavier_defaults_to_gain_one_whatever_the_activation(compose_cfg, rule, torch_fill):
    """Glorot & Bengio 2010 and torch: variance 2 / (fan_in + fan_out) under ReLU too, not 2x that."""
    weight = initialized_layer(yaml_init(compose_cfg, rule), RELU)
    assert torch.allclose(weight, torch_drawn(torch_fill), rtol=1e-6, atol=0)
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 800), rel=0.02)


def test_orthogonal_defaults_to_gain_one(compose_cfg):
    """torch's orthogonal_ default: W W^T = I exactly, under tanh too."""
    weight = initialized_layer(yaml_init(compose_cfg, "orthogonal"), TANH, shape=(20, 50))
    assert torch.allclose(weight @ weight.T, torch.eye(20), atol=1e-5)
    assert torch.equal(weight, torch_drawn(nn.init.orthogonal_, shape=(20, 50)))


@pytest.mark.parametrize("rule, torch_fill", [("kaiming_normal", nn.init.kaiming_normal_),
                                              ("kaiming_uniform", nn.init.kaiming_uniform_)])
@pytest.mark.parametrize("activation", [RELU, TANH, {"name": "identity"}], ids=["relu", "tanh", "identity"])
def test_kaiming_defaults_to_torchs_default_he_gain(compose_cfg, rule, torch_fill, activation):
    """He et al.'s sqrt(2 / (1 + a^2)) with a = 0 unless the activation is a leaky ReLU:
    torch's kaiming_*_ default (a=0, nonlinearity='leaky_relu'), std sqrt(2 / fan_in)."""
    weight = initialized_layer(yaml_init(compose_cfg, rule), activation)
    assert torch.allclose(weight, torch_drawn(torch_fill), rtol=1e-6, atol=0)
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 500), rel=0.02)


@pytest.mark.parametrize("mode, fan", [("fan_in", 500), ("fan_out", 300)])
def test_kaiming_under_leaky_relu_takes_its_slope_as_a(compose_cfg, mode, fan):
    weight = initialized_layer(yaml_init(compose_cfg, "kaiming_normal", f"init.mode={mode}"),
                               {"name": "leaky_relu", "slope": 0.2})
    assert torch.allclose(weight, torch_drawn(nn.init.kaiming_normal_, a=0.2, mode=mode), rtol=1e-6, atol=0)
    assert weight.std().item() == pytest.approx(math.sqrt(2 / ((1 + 0.2 ** 2) * fan)), rel=0.02)


@pytest.mark.parametrize("init, activation, gain", [
    ({"name": "xavier_normal", "gain": "activation"}, TANH, TANH_GAIN),
    ({"name": "xavier_normal", "gain": "activation"}, {"name": "leaky_relu", "slope": 0.2}, math.sqrt(2 / 1.04)),
    ({"name": "xavier_normal", "gain": 1.5}, RELU, 1.5),
    ({"name": "kaiming_normal", "gain": "activation", "mode": "fan_in"}, TANH, TANH_GAIN),
    ({"name": "kaiming_normal", "gain": 0.5, "mode": "fan_in"}, RELU, 0.5),
])
def test_init_gain_scales_every_layer_the_output_layer_included(init, activation, gain):
    """`activation` is torch's calculate_gain of the configured activation; a number is that gain."""
    cfg = mlp_cfg({**init, "bias": {"name": "zeros"}}, depth=1, width=400)
    cfg["activation"] = activation
    hidden, head = init_layers(initialized(cfg, (400,), out_dim=400))
    std = gain * math.sqrt(2 / 800) if init["name"] == "xavier_normal" else gain / math.sqrt(400)
    assert_normal(hidden.weight.detach(), std)
    assert_normal(head.weight.detach(), std)


@pytest.mark.parametrize("gain, expected", [(1.0, 1.0), ("activation", math.sqrt(2)), (2.0, 2.0)])
def test_orthogonal_takes_init_gain(gain, expected):
    weight = initialized_layer({"name": "orthogonal", "gain": gain}, RELU, shape=(20, 50))
    assert torch.allclose(weight @ weight.T, expected ** 2 * torch.eye(20), atol=1e-5)


def test_unknown_weight_rule_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        WEIGHT_INITS.get("glorot")
    assert all(name in str(info.value) for name in WEIGHT_INITS.names())


# ---------------------------------------------------------------- initialize(): the wiring

def mlp_cfg(init: dict, activation: str = "relu", depth: int = 2, width: int = 8, norm: str = "none") -> dict:
    return {"model": {"name": "mlp", "depth": depth, "width": width, "dropout": 0.0},
            "norm": NORMS.get(norm).defaults(), "activation": ACTIVATIONS.get(activation).defaults(),
            "init": init, "data": {"name": "test"}, "regularize": {}}


def initialized(cfg: dict, input_shape=(6,), out_dim=3, ctx: InitContext | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg, input_shape, out_dim)
    initialize(model, cfg["init"], cfg["activation"], ctx)
    return model


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

def blob_variance(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> float:
    """Var(B_L) of Mishkin & Matas: the variance of all of the layer's outputs together."""
    outputs = []
    handle = layer.register_forward_hook(lambda module, inputs, output: outputs.append(output.detach()))
    model(x)
    handle.remove()
    return outputs[0].double().var(correction=0).item()


def lsuv_model(norm: str, activation: str, **lsuv_keys) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(256, 12) * 4 + 1  # features off-centre: units' output means differ
    cfg = mlp_cfg({"name": "lsuv", **lsuv_keys, "bias": {"name": "default"}}, activation, depth=4, width=32, norm=norm)
    model = initialized(cfg, (12,), ctx=InitContext(x_batch=x))
    assert model.training
    return model.eval(), x


@pytest.mark.parametrize("norm, activation", [("none", "tanh"), ("weight", "relu"), ("batch", "elu")])
@pytest.mark.parametrize("tol_var", [0.1, 1e-5])
def test_lsuv_brings_every_layers_output_variance_within_tol_var_of_one(norm, activation, tol_var):
    """The variance of the whole output blob (units, samples and pixels together); nonzero
    biases make one division inexact, so reaching a tight tol_var takes several tries."""
    model, x = lsuv_model(norm, activation, tol_var=tol_var, t_max=100)
    for layer in init_layers(model):
        assert abs(blob_variance(model, layer, x) - 1) < tol_var
        assert output_variance(model, layer, x) == pytest.approx(blob_variance(model, layer, x), rel=1e-5)


def test_lsuv_with_t_max_zero_keeps_the_orthonormal_weights():
    model, x = lsuv_model("none", "tanh", tol_var=0.1, t_max=0)
    for layer in init_layers(model):
        w = layer.weight.detach()
        rows = min(w.shape)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(rows), atol=1e-5)


def test_lsuv_needs_a_batch():
    with pytest.raises(ConfigError, match="init=lsuv needs a training batch"):
        initialized(mlp_cfg({"name": "lsuv", "bias": {"name": "zeros"}}))


# ---------------------------------------------------------------- every YAML on disk

def init_options() -> list[str]:
    return sorted(p.stem for p in (builtin_config_dir() / "init").glob("*.yaml") if p.stem != "custom")  # test_registry.py


@pytest.mark.parametrize("option", init_options())
def test_every_init_yaml_composes_and_initializes_a_model(compose_cfg, option):
    cfg = as_plain(compose_cfg(f"init={option}", "model.width=8", "init.bias.name=output_prior"))
    assert cfg["init"]["name"] in WEIGHT_INITS and set(cfg["init"]["bias"]) == {"name", "value"}
    x = torch.randn(16, 1, 8, 8)
    model = initialized(cfg, (1, 8, 8), 10, InitContext(x_batch=x, y_train=torch.arange(10), num_classes=10))
    assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("value, expected", [("activation", "activation"), ("1.5", 1.5), ("2", 2)])
def test_init_gain_takes_activation_or_a_positive_number(compose_cfg, value, expected):
    for rule in ("xavier_normal", "xavier_uniform", "orthogonal", "kaiming_normal", "kaiming_uniform"):
        assert compose_cfg(f"init={rule}", f"init.gain={value}").init.gain == expected
    for rule in ("kaiming_normal", "kaiming_uniform"):  # back to He et al.'s gain, the default
        assert compose_cfg(f"init={rule}", f"init.gain={value}", "init.gain=null").init.gain is None


@pytest.mark.parametrize("value, message", [
    ("relu", "init.gain=relu: choose from: activation, or a number > 0"),
    ("true", "init.gain=true: choose from: activation, or a number > 0"),
    ("0", "init.gain=0: must be > 0"),
    ("-1.5", "init.gain=-1.5: must be > 0"),
])
def test_init_gain_rejects_other_words_and_non_positive_numbers(compose_cfg, value, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        compose_cfg("init=xavier_normal", f"init.gain={value}")


def test_rules_without_a_gain_reject_init_gain(compose_cfg):
    with pytest.raises(ConfigError, match="init.gain: unknown key"):
        compose_cfg("init=lecun_normal", "init.gain=2")


def test_an_unknown_gain_word_exits_2_with_one_line(optlab):
    result = optlab("train", "init=xavier_uniform", "init.gain=tanh")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].endswith("init.gain=tanh: choose from: activation, or a number > 0")


def test_bias_is_overridable_as_name_and_value(compose_cfg):
    cfg = compose_cfg("init=xavier_uniform", "init.bias.name=constant", "init.bias.value=0.1")
    assert cfg.init.bias.name in BIAS_INITS and cfg.init.bias.value == 0.1
    with pytest.raises(ConfigError, match="init.bias.value=big: expected a number"):
        compose_cfg("init.bias.value=big")


@pytest.mark.parametrize("cfg, gain", [
    ({"name": "identity"}, 1.0),
    ({"name": "sigmoid"}, 1.0),
    ({"name": "tanh"}, 5 / 3),
    ({"name": "relu"}, math.sqrt(2)),
    ({"name": "leaky_relu", "slope": 0.2}, math.sqrt(2 / (1 + 0.2 ** 2))),
    ({"name": "elu", "alpha": 1.0}, math.sqrt(2)),
    ({"name": "gelu"}, math.sqrt(2)),
])
def test_activation_gains_for_init(cfg, gain):
    assert activation_gain(cfg) == pytest.approx(gain)
