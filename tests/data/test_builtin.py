"""The built-in datasets' shapes and classes, and linreg's noise level."""
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
