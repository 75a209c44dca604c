"""The held-out validation split, and standardization with training statistics only."""
import torch

from optlab.data._base import Pool
from optlab.data.split import load_dataset, split_indices, standardization_stats


def test_validation_split_is_held_out_stratified_and_seeded():
    pool = Pool(torch.arange(100.0).unsqueeze(1), torch.arange(100) % 4)
    train_a, val_a = split_indices(pool, 0.2, seed=1)
    train_b, val_b = split_indices(pool, 0.2, seed=1)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert set(train_a.tolist()).isdisjoint(val_a.tolist())
    assert len(train_a) + len(val_a) == 100
    assert torch.bincount(pool.y[val_a]).tolist() == [5, 5, 5, 5]
    _, val_c = split_indices(pool, 0.2, seed=2)
    assert not torch.equal(val_a, val_c)


def test_standardization_uses_training_statistics_only():
    data = load_dataset({"name": "digits"}, 0.2, seed=0)
    assert abs(data.x_train.mean().item()) < 1e-5
    assert abs(data.x_train.std().item() - 1) < 1e-3
    assert abs(data.x_val.mean().item()) > 1e-4  # val is shifted by the *training* mean, not its own
    raw = load_dataset({"name": "digits"}, 0.2, seed=0, standardize=False)
    assert torch.allclose((raw.x_val - data.mean) / data.std, data.x_val)


def test_per_feature_statistics_for_tables_keep_constant_features_finite():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    mean, std = standardization_stats(x)
    assert mean.tolist() == [2.0, 5.0]
    assert std[1] == 1.0


def test_test_fraction_holds_out_a_seeded_stratified_split_disjoint_from_train_and_validation(monkeypatch):
    from optlab.data._base import DATASETS, DatasetSpec

    numbered = DatasetSpec(name="_ids", description="rows numbered 0..199, four classes",
                           load=lambda cfg, seed: Pool(torch.arange(200.0).unsqueeze(1), torch.arange(200) % 4))
    monkeypatch.setitem(DATASETS._specs, "_ids", numbered)
    data = load_dataset({"name": "_ids"}, 0.25, seed=3, standardize=False, test_fraction=0.2)
    again = load_dataset({"name": "_ids"}, 0.25, seed=3, standardize=False, test_fraction=0.2)
    other = load_dataset({"name": "_ids"}, 0.25, seed=4, standardize=False, test_fraction=0.2)
    plain = load_dataset({"name": "_ids"}, 0.25, seed=3, standardize=False)
    train, val, test = (set(x.flatten().long().tolist()) for x in (data.x_train, data.x_val, data.x_test))
    assert train.isdisjoint(val) and train.isdisjoint(test) and val.isdisjoint(test)
    assert train | val | test == set(range(200))
    assert len(test) == 40 and torch.bincount(data.y_test).tolist() == [10, 10, 10, 10]  # 20% of each class
    assert len(val) == 40  # 25% of the 160 left
    assert torch.equal(data.x_test, again.x_test) and not torch.equal(data.x_test, other.x_test)
    pool = Pool(torch.arange(200.0).unsqueeze(1), torch.arange(200) % 4)
    assert not plain.has_test and torch.equal(plain.x_val, pool.x[split_indices(pool, 0.25, seed=3)[1]])  # as before


def test_test_split_is_standardized_with_the_training_statistics():
    data = load_dataset({"name": "digits"}, 0.2, seed=0, test_fraction=0.2)
    raw = load_dataset({"name": "digits"}, 0.2, seed=0, standardize=False, test_fraction=0.2)
    mean, std = standardization_stats(raw.x_train)
    assert torch.allclose(data.x_test, (raw.x_test - mean) / std)
    assert abs(data.x_test.mean().item()) > 1e-4  # not its own statistics


def test_regression_test_fraction_and_a_too_large_one():
    import pytest

    from optlab.errors import ConfigError

    data = load_dataset({"name": "linreg", "n_samples": 100, "n_features": 3, "noise": 0.1}, 0.2, 0, test_fraction=0.1)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (72, 18, 10)
    with pytest.raises(ConfigError, match="trainer.test_fraction"):
        load_dataset({"name": "linreg", "n_samples": 4, "n_features": 3, "noise": 0.1}, 0.2, 0, test_fraction=0.1)


def test_data_standardize_false_keeps_the_raw_inputs():
    raw = load_dataset({"name": "digits", "standardize": False}, 0.2, seed=0)
    std = load_dataset({"name": "digits", "standardize": True}, 0.2, seed=0)
    assert float(raw.x_train.min()) == 0.0 and float(raw.x_train.max()) == 16.0  # the digits' pixel counts
    assert torch.equal(raw.mean, torch.zeros(())) and torch.equal(raw.std, torch.ones(()))
    mean, scale = standardization_stats(raw.x_train)
    assert torch.allclose(std.x_train, (raw.x_train - mean) / scale)
