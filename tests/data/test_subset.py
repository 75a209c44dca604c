"""data.keep_classes: the listed classes only, relabelled by their position in the list."""
import pytest
import torch

from optlab.data._base import Pool
from optlab.data.split import load_dataset
from optlab.data.subset import keep_classes
from optlab.errors import ConfigError


def test_kept_classes_are_relabelled_in_the_order_listed():
    x = torch.arange(10.0).unsqueeze(1)
    y = torch.tensor([0, 1, 2, 3, 7, 7, 3, 0, 1, 2])
    kept = keep_classes(Pool(x, y), {"name": "toy", "keep_classes": [7, 3]})
    assert kept.x.flatten().tolist() == [3.0, 4.0, 5.0, 6.0]
    assert kept.y.tolist() == [1, 0, 0, 1]  # 7 -> 0, 3 -> 1


def test_test_files_are_cut_the_same_way():
    pool = Pool(torch.zeros(4, 1), torch.tensor([0, 1, 2, 2]), x_test=torch.arange(3.0).unsqueeze(1),
                y_test=torch.tensor([2, 1, 0]))
    kept = keep_classes(pool, {"name": "toy", "keep_classes": [2]})
    assert kept.y.tolist() == [0, 0] and kept.y_test.tolist() == [0] and kept.x_test.tolist() == [[0.0]]


def test_digits_subset_has_five_classes_and_all_their_samples():
    full = load_dataset({"name": "digits"}, 0.2, seed=0)
    five = load_dataset({"name": "digits", "keep_classes": [0, 1, 2, 3, 4]}, 0.2, seed=0)
    assert five.num_classes == 5 and five.output_dim == 5
    in_full = sum(int((full.y_train == c).sum() + (full.y_val == c).sum()) for c in range(5))
    assert len(five.y_train) + len(five.y_val) == in_full
    assert set(five.y_val.tolist()) == {0, 1, 2, 3, 4}


def test_a_class_the_data_lacks_or_regression_data_exits_2():
    with pytest.raises(ConfigError, match=r"data.keep_classes=\[0, 11\]: data=digits has no class 11 \(its labels: 0, 1,"):
        load_dataset({"name": "digits", "keep_classes": [0, 11]}, 0.2, seed=0)
    with pytest.raises(ConfigError, match="data=linreg is regression data; it has no classes"):
        load_dataset({"name": "linreg", "n_samples": 50, "n_features": 2, "noise": 0.1, "keep_classes": [0]}, 0.2, 0)


def test_the_key_checks_its_list(compose_cfg):
    with pytest.raises(ConfigError, match=r"data.keep_classes=\[1, 1\]: must be a list of distinct class labels >= 0"):
        compose_cfg("data.keep_classes=[1,1]")


def test_a_subsets_validation_split_is_the_full_datas_for_those_classes():
    """The split is stratified class by class in label order, so with the same seed a run on
    classes 0-4 validates on exactly the samples a 10-class run validated on (none it trained on)."""
    full = load_dataset({"name": "digits"}, 0.2, seed=1, standardize=False)
    five = load_dataset({"name": "digits", "keep_classes": [0, 1, 2, 3, 4]}, 0.2, seed=1, standardize=False)
    assert torch.equal(five.x_val, full.x_val[full.y_val < 5]) and torch.equal(five.y_val, full.y_val[full.y_val < 5])
