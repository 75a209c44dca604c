"""The held-out validation split, and standardization with training statistics only."""
import torch

from runner.data._base import Pool
from runner.data.split import load_dataset, split_indices, standardization_stats


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
