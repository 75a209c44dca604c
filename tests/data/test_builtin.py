"""The built-in datasets' shapes and classes, linreg's noise level and its ill-conditioned spectrum."""
import pytest
import torch

from optlab.data.split import load_dataset
from optlab.nn.layers import NORMS
from optlab.nn.models import build_model


def test_digits_spirals_moons_shapes():
    digits = load_dataset({"name": "digits"}, 0.2, 0)
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_val) == 1797
    spirals = load_dataset({"name": "spirals", "n_samples": 300, "classes": 3, "noise": 0.1}, 0.2, 0)
    assert spirals.input_shape == (2,) and spirals.num_classes == 3
    moons = load_dataset({"name": "moons", "n_samples": 200, "noise": 0.1}, 0.25, 0)
    assert moons.num_classes == 2 and len(moons.x_val) == 50


def cfg_for(model: dict, norm: str = "none", activation: str = "relu", dropout=None) -> dict:
    return {"model": model, "norm": NORMS.get(norm).defaults(),
            "activation": {"name": activation}, "data": {"name": "test"}, "regularize": {"dropout": dropout}}


def test_linreg_is_a_least_squares_problem_the_linear_model_solves_to_the_noise_level():
    data = load_dataset({"name": "linreg", "n_samples": 400, "n_features": 5, "noise": 0.1}, 0.25, seed=0)
    assert data.task == "regression" and data.num_classes == 0 and data.output_dim == 1
    model = build_model(cfg_for({"name": "linear"}), data.input_shape, data.output_dim)
    design = torch.cat([data.x_train, torch.ones(len(data.x_train), 1)], dim=1)
    solution = torch.linalg.lstsq(design, data.y_train[:, None]).solution.squeeze(1)
    with torch.no_grad():
        model.head.weight.copy_(solution[:-1][None])
        model.head.bias.copy_(solution[-1:])
    val_mse = ((model(data.x_val).squeeze(1) - data.y_val) ** 2).mean().item()
    assert val_mse == pytest.approx(0.1 ** 2, rel=0.35)


def test_linreg_condition_1_is_the_isotropic_problem_it_always_was():
    import numpy as np

    from optlab.data.builtin import load_linreg

    cfg = {"n_samples": 50, "n_features": 4, "noise": 0.1}
    old, new = load_linreg(cfg, 3), load_linreg({**cfg, "condition": 1.0}, 3)
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(50, 4)), rng.normal(size=4)
    assert torch.equal(old.x, new.x) and torch.equal(old.y, new.y)
    assert torch.equal(new.x, torch.tensor(x, dtype=torch.float32))
    assert torch.allclose(new.y, torch.tensor(x @ w + rng.normal(0.0, 0.1, 50), dtype=torch.float32))


def test_linreg_condition_gives_the_spectrum_asked_for_and_equal_shares_of_the_signal():
    import numpy as np

    from optlab.data.builtin import ill_conditioned, load_linreg

    d, condition = 8, 100.0
    x, w_star, lam, q = ill_conditioned(np.random.default_rng(0), 200_000, d, condition)
    assert lam[0] == pytest.approx(1.0) and lam[-1] == pytest.approx(1 / condition)
    assert np.allclose(np.diff(np.log(lam)), np.log(condition) / -(d - 1))     # log-spaced
    assert np.allclose(q.T @ q, np.eye(d), atol=1e-12)                         # a rotation
    covariance = x.T @ x / len(x)
    assert np.allclose(covariance, q @ np.diag(lam) @ q.T, atol=0.01)
    eig = np.linalg.eigvalsh(covariance)
    assert eig.max() / eig.min() == pytest.approx(condition, rel=0.05)         # the Hessian's condition, 2 X^T X / n
    whitened = x @ q / np.sqrt(lam)                                             # = Z
    assert np.allclose(whitened.T @ whitened / len(x), np.eye(d), atol=0.02)
    # X w* = Z u: direction i's share of the signal is lam_i (q_i . w*)^2 = u_i^2, 1 on average for every i
    draws = [ill_conditioned(np.random.default_rng(s), 2, d, condition) for s in range(2000)]
    shares = np.array([lam_s * (q_s.T @ w_s) ** 2 for _, w_s, lam_s, q_s in draws])
    assert np.allclose(shares.mean(axis=0), 1.0, atol=0.15)
    pool = load_linreg({"n_samples": 4000, "n_features": d, "noise": 0.1, "condition": condition}, 0)
    design = torch.cat([pool.x, torch.ones(len(pool.x), 1)], dim=1).double()
    fit = torch.linalg.lstsq(design, pool.y[:, None].double()).solution
    residual = pool.y.double() - (design @ fit).squeeze(1)
    assert residual.std().item() == pytest.approx(0.1, rel=0.05)               # the noise floor, as with condition 1
