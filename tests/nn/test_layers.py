"""Normalization and activation options checked against their formulas."""
import math

import pytest
import torch
import torch.nn as nn

from optlab.config.compose import as_plain, builtin_config_dir
from optlab.errors import ConfigError
from optlab.nn.init import activation_gain
from optlab.nn.layers import ACTIVATIONS, NORMS, make_activation, make_norm
from optlab.nn.models import build_model, make_block


def norm_cfg(name: str, **keys) -> dict:
    return NORMS.get(name).defaults(**keys)


def block_cfg(norm: dict, activation: str = "relu") -> dict:
    return {"norm": norm, "activation": {"name": activation}}


def standardized(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


# ---------------------------------------------------------------- batch norm

def test_batch_norm_uses_batch_statistics_in_training_and_updates_running_ones():
    torch.manual_seed(0)
    bn = make_norm(norm_cfg("batch", momentum=0.25), 4, spatial=False)
    x = torch.randn(32, 4) * 3 + 2
    out = bn.train()(x)
    assert torch.allclose(out, standardized(x, (0,)), atol=1e-5)
    assert torch.allclose(bn.running_mean, 0.25 * x.mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, 0.75 + 0.25 * x.var(0, unbiased=True), atol=1e-5)


def test_batch_norm_in_eval_uses_running_statistics_so_a_batch_of_one_matches_the_full_batch():
    torch.manual_seed(0)
    bn = make_norm(norm_cfg("batch", momentum=0.1), 3, spatial=True)
    for _ in range(5):
        bn.train()(torch.randn(8, 3, 4, 4) * 2 + 1)
    bn.eval()
    x = torch.randn(6, 3, 4, 4)
    expected = (x - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + 1e-5)
    assert torch.allclose(bn(x), expected, atol=1e-5)
    assert torch.allclose(bn(x[2:3]), bn(x)[2:3], atol=1e-6)


# ---------------------------------------------------------------- per-sample norms

@pytest.mark.parametrize("name, keys, shape, groups", [
    ("layer", {}, (5, 12), None),
    ("layer", {}, (5, 6, 3, 3), 1),
    ("group", {"groups": 3}, (5, 6, 3, 3), 3),
    ("group", {"groups": 4}, (5, 12), 4),
    ("instance", {"affine": True}, (5, 6, 3, 3), 6),
])
def test_per_sample_norms_standardize_over_their_axes(name, keys, shape, groups):
    torch.manual_seed(0)
    x = torch.randn(*shape) * torch.arange(1, shape[1] + 1).view(1, -1, *[1] * (len(shape) - 2)) + 3
    layer = make_norm(norm_cfg(name, **keys), shape[1], spatial=len(shape) == 4)
    out = layer.train()(x)
    if groups is None:  # layer norm on features: each sample over its features
        expected = standardized(x, (1,))
    else:  # each sample, over each group of channels and their pixels
        grouped = x.reshape(shape[0], groups, -1)
        expected = standardized(grouped, (2,)).reshape(shape)
    assert torch.allclose(out, expected, atol=1e-4)
    assert torch.allclose(layer.eval()(x), out)  # no running statistics: eval is the same map


def test_group_norm_names_the_groups_that_do_not_divide_the_channels():
    with pytest.raises(ConfigError, match=r"norm.groups=5: must divide .* 12"):
        make_norm(norm_cfg("group", groups=5), 12, spatial=True)


def test_instance_norm_refuses_fully_connected_features():
    with pytest.raises(ConfigError, match="norm=instance .* needs conv feature maps"):
        make_norm(norm_cfg("instance", affine=True), 8, spatial=False)


# ---------------------------------------------------------------- weight norm

def weight_norm_parts(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    params = layer.parametrizations.weight
    return params.original0, params.original1  # g (per output unit), v


def test_weight_norm_reparametrizes_weight_as_g_times_unit_v_and_trains():
    torch.manual_seed(0)
    block = make_block(nn.Linear(5, 3), 3, False, block_cfg(norm_cfg("weight"), "identity"), 0.0)
    layer = block[0]
    g, v = weight_norm_parts(layer)
    assert g.shape == (3, 1) and v.shape == (3, 5)
    assert torch.allclose(layer.weight, g * v / v.norm(dim=1, keepdim=True))
    x, y = torch.randn(16, 5), torch.randn(16, 3)
    losses = []
    for _ in range(3):  # plain gradient descent on g, v and the bias
        loss = ((block(x) - y) ** 2).mean()
        grads = torch.autograd.grad(loss, list(block.parameters()))
        with torch.no_grad():
            for param, grad in zip(block.parameters(), grads):
                param -= 0.1 * grad
        losses.append(loss.item())
    assert losses[2] < losses[0]
    g, v = weight_norm_parts(layer)
    assert torch.allclose(layer.weight, g * v / v.norm(dim=1, keepdim=True))


def test_weight_norm_adds_no_norm_layer():
    block = make_block(nn.Linear(4, 4), 4, False, block_cfg(norm_cfg("weight")), 0.0)
    assert len(block) == 2 and isinstance(block[0], nn.Linear) and isinstance(block[1], nn.ReLU)


# ---------------------------------------------------------------- norm position

@pytest.mark.parametrize("position, order", [
    ("pre", [nn.Linear, nn.BatchNorm1d, nn.ReLU]),
    ("post", [nn.Linear, nn.ReLU, nn.BatchNorm1d]),
])
def test_norm_position_puts_norm_before_or_after_the_activation(position, order):
    cfg = block_cfg(norm_cfg("batch", momentum=0.1, position=position))
    block = make_block(nn.Linear(4, 4), 4, False, cfg, 0.0)
    assert [type(m) for m in block] == order


def test_post_norm_output_is_standardized_after_relu():
    torch.manual_seed(0)
    cfg = block_cfg(norm_cfg("batch", momentum=0.1, position="post"))
    block = make_block(nn.Linear(4, 6), 6, False, cfg, 0.0).train()
    x = torch.randn(64, 4)
    expected = standardized(torch.relu(block[0](x)), (0,))
    assert torch.allclose(block(x), expected, atol=1e-4)


# ---------------------------------------------------------------- activations

X = torch.linspace(-3, 3, 61)


@pytest.mark.parametrize("cfg, formula", [
    ({"name": "identity"}, lambda x: x),
    ({"name": "sigmoid"}, lambda x: 1 / (1 + torch.exp(-x))),
    ({"name": "tanh"}, lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))),
    ({"name": "relu"}, lambda x: torch.where(x > 0, x, torch.zeros_like(x))),
    ({"name": "leaky_relu", "slope": 0.2}, lambda x: torch.where(x > 0, x, 0.2 * x)),
    ({"name": "elu", "alpha": 0.5}, lambda x: torch.where(x > 0, x, 0.5 * (torch.exp(x) - 1))),
    ({"name": "gelu"}, lambda x: x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))),
])
def test_activations_match_their_formulas(cfg, formula):
    assert torch.allclose(make_activation(cfg)(X), formula(X), atol=1e-6)


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        make_activation({"name": "swish"})
    assert all(name in str(info.value) for name in ACTIVATIONS.names())


# ---------------------------------------------------------------- every YAML on disk

def options(group: str) -> list[str]:
    return sorted(p.stem for p in (builtin_config_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("option", options("norm"))
def test_every_norm_yaml_composes_and_builds_a_conv_net(compose_cfg, option):
    cfg = compose_cfg(f"norm={option}", "model=cnn", "model.channels=8", "model.depth=2")
    assert cfg.norm.name in NORMS and cfg.norm.position == "pre"
    model = build_model(as_plain(cfg), (1, 8, 8), 10)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("option", options("activation"))
def test_every_activation_yaml_composes_and_builds_an_mlp(compose_cfg, option):
    cfg = compose_cfg(f"activation={option}", "model.width=8")
    model = build_model(as_plain(cfg), (1, 8, 8), 10)
    assert torch.isfinite(model(torch.randn(2, 1, 8, 8))).all()
    assert activation_gain(as_plain(cfg.activation)) > 0


# ---------------------------------------------------------------- noisy batch norm (Santurkar et al. 2018)

@pytest.mark.parametrize("spatial, shape", [(False, (16, 6)), (True, (8, 6, 5, 5))])
def test_noisy_batch_norm_is_batch_norm_times_s_plus_m_in_training(spatial, shape):
    """Training output = BN(x) * s + m with s ~ N(1, scale_std^2), m ~ N(0, mean_std^2), one
    per unit, drawn s first then m from the layer's generator; running statistics as plain BN."""
    from optlab.nn.layers import NoiseAfterNorm, set_noise_generator

    cfg = norm_cfg("batch", noise=True, noise_mean_std=0.3, noise_scale_std=0.2)
    noisy, plain = make_norm(cfg, 6, spatial), make_norm(norm_cfg("batch"), 6, spatial)
    assert isinstance(noisy, NoiseAfterNorm) and isinstance(noisy, type(plain))
    assert set_noise_generator(nn.Sequential(noisy), torch.Generator().manual_seed(7))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 3 + 2
    twin = torch.Generator().manual_seed(7)
    for _ in range(2):  # redrawn every step
        s = torch.randn(6, generator=twin) * 0.2 + 1
        m = torch.randn(6, generator=twin) * 0.3
        view = (1, 6, 1, 1) if spatial else (1, 6)
        expected = plain(x) * s.view(view) + m.view(view)
        assert torch.allclose(noisy(x), expected, rtol=0, atol=1e-6)
    assert torch.equal(noisy.running_mean, plain.running_mean) and torch.equal(noisy.running_var, plain.running_var)
    noisy.eval(), plain.eval()
    state = noisy.generator.get_state()
    assert torch.equal(noisy(x), plain(x))  # eval: plain batch norm
    assert torch.equal(noisy.generator.get_state(), state)  # and nothing drawn


def test_noisy_batch_norm_noise_has_the_configured_moments():
    cfg = norm_cfg("batch", noise=True, noise_mean_std=0.5, noise_scale_std=0.25)
    layer = make_norm(cfg, 20000, False)
    layer.generator = torch.Generator().manual_seed(0)
    s, m = layer.draw(20000, torch.device("cpu"))
    assert s.mean().item() == pytest.approx(1, abs=0.01) and s.std().item() == pytest.approx(0.25, rel=0.03)
    assert m.mean().item() == pytest.approx(0, abs=0.02) and m.std().item() == pytest.approx(0.5, rel=0.03)


def test_noisy_batch_norm_runs_are_reproducible_and_differ_from_plain(compose_cfg):
    from optlab.training.api import train

    def final(*overrides):
        return train(compose_cfg("norm=batch", "trainer.epochs=1", *overrides)).summary["final_val_loss"]

    noisy = final("norm.noise=true")
    assert final("norm.noise=true") == noisy
    assert final() != noisy
