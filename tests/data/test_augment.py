"""Each augmentation's output against what it must be; lists of augmentations; determinism."""
import math

import pytest
import torch
import torch.nn.functional as F

from optlab.config.compose import compose, group_options
from optlab.data.augment import AUGMENTATIONS, _beta_sample, build_pipeline
from optlab.errors import ConfigError
from optlab.training.api import train


def images(n=64, c=2, h=8, w=8, seed=0) -> torch.Tensor:
    """Values in [1, 2): every pixel is distinct from the zero fill."""
    return 1 + torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def labels(n=64, classes=10) -> torch.Tensor:
    return torch.arange(n) % classes


def augment(name: str, x, y=None, seed=0, num_classes=10, **params):
    pipeline = build_pipeline({name: AUGMENTATIONS.get(name).defaults(**params)}, num_classes=num_classes)
    return pipeline(x, labels(len(x)) if y is None else y, torch.Generator().manual_seed(seed))


def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img (C, H, W) moved down by dy and right by dx, zeros where nothing moved in."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def shifts_found(x, out, max_shift) -> list[tuple[int, int]]:
    """The (dy, dx) that turns each x[i] into out[i]; fails when none within max_shift does."""
    found = []
    for img, got in zip(x, out):
        candidates = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)
                      if torch.equal(shifted(img, dy, dx), got)]
        assert len(candidates) == 1, "output is not a zero-filled shift of its input"
        found.append(candidates[0])
    return found


def test_every_registered_augmentation_has_a_yaml():
    assert set(AUGMENTATIONS.names()) == set(group_options("augment"))


def test_flip_mirrors_exactly_with_probability_p():
    x = images(n=200)
    assert torch.equal(augment("flip", x, p=1.0)[0], x.flip(-1))
    assert torch.equal(augment("flip", x, p=0.0)[0], x)
    out = augment("flip", x, p=0.5)[0]
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped ^ kept).all())
    assert 60 < int(flipped.sum()) < 140  # Binomial(200, 0.5): mean 100, sd ~7


@pytest.mark.parametrize("name, key", [("crop", "padding"), ("translate", "max_shift")])
def test_crop_and_translate_are_zero_filled_shifts_covering_every_offset(name, key):
    x = images(n=300, h=6, w=7)
    out, y = augment(name, x, **{key: 1})
    assert out.shape == x.shape and torch.equal(y, labels(300))
    found = shifts_found(x, out, max_shift=1)
    assert set(found) == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}


def test_crop_with_zero_padding_is_identity():
    x = images()
    assert torch.equal(augment("crop", x, padding=0)[0], x)


def test_noise_has_the_configured_std_on_any_shape():
    x = torch.zeros(200_000, 2)
    out = augment("noise", x, std=0.3)[0]
    assert out.mean().item() == pytest.approx(0.0, abs=0.005)
    assert out.std().item() == pytest.approx(0.3, rel=0.02)


def test_cutout_zeroes_one_size_by_size_square_in_all_channels():
    x = images(n=100, c=3, h=8, w=8)
    out = augment("cutout", x, size=3)[0]
    for img, got in zip(x, out):
        zero = got == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])
        rows, cols = torch.nonzero(zero[0], as_tuple=True)
        assert len(rows) == 9
        assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2  # 9 cells in a 3x3 box
        assert torch.equal(got[~zero], img[~zero])


def test_cutout_larger_than_the_image_is_a_config_error():
    with pytest.raises(ConfigError, match="augment.cutout.size=9"):
        augment("cutout", images(h=8, w=8), size=9)


def test_mixup_is_a_convex_combination_of_pairs_with_soft_labels():
    n, classes = 12, 4
    x = torch.eye(n)  # sample i is e_i, so each output row reveals lam and the partner
    y = labels(n, classes)
    out, soft = augment("mixup", x, y, num_classes=classes, alpha=50.0)  # lam near 0.5: pairs are readable
    lam = out[torch.arange(n), torch.arange(n)]
    partner_weight = out.clone()
    partner_weight[torch.arange(n), torch.arange(n)] = 0
    mixed = partner_weight.sum(1) > 0
    assert bool(mixed.any())
    assert torch.allclose(lam[mixed], lam[mixed][0].expand(int(mixed.sum())))  # one lam per batch
    assert torch.allclose(out.sum(1), torch.ones(n))
    partner = torch.where(mixed, partner_weight.argmax(1), torch.arange(n))
    lam0 = lam[mixed][0]
    expected = lam0 * F.one_hot(y, classes) + (1 - lam0) * F.one_hot(y[partner], classes)
    assert torch.allclose(soft, expected)
    assert torch.allclose(soft.sum(1), torch.ones(n))


def test_mixup_mixes_regression_targets_the_same_way():
    x = torch.eye(6)
    y = torch.arange(6, dtype=torch.float32)
    out, mixed_y = augment("mixup", x, y, num_classes=None, alpha=50.0)
    assert torch.allclose(mixed_y, out @ y)  # row i of out holds the weights of the mix


def test_mixup_lam_follows_beta_alpha_alpha():
    g = torch.Generator().manual_seed(0)
    draws = torch.tensor([_beta_sample(0.2, g) for _ in range(4000)])
    assert draws.mean().item() == pytest.approx(0.5, abs=0.03)
    assert draws.var().item() == pytest.approx(1 / (4 * (2 * 0.2 + 1)), rel=0.1)


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_randomness_comes_only_from_the_generator(name):
    x = images()
    torch_state = torch.get_rng_state()
    a, ya = augment(name, x, seed=5)
    b, yb = augment(name, x, seed=5)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert a.shape == x.shape and len(ya) == len(x)


def test_image_augmentations_refuse_tables():
    with pytest.raises(ConfigError, match="augment=flip: needs image inputs"):
        augment("flip", torch.zeros(8, 2))


def test_a_list_composes_in_the_order_given():
    cfg = compose(["augment=[crop,flip]", "augment.flip.p=1.0"])
    assert list(cfg.augment) == ["crop", "flip"]
    x = images()
    out = build_pipeline(cfg.augment)(x, labels(), torch.Generator().manual_seed(3))[0]
    g = torch.Generator().manual_seed(3)
    by_hand = AUGMENTATIONS.get("crop").apply(x, labels(), {"padding": 2}, g)[0].flip(-1)
    assert torch.equal(out, by_hand)


@pytest.mark.parametrize("option", group_options("augment"))
def test_every_augment_option_trains_one_tiny_epoch(compose_cfg, option):
    result = train(compose_cfg(f"augment={option}", "trainer.epochs=1"))
    assert result.status == "completed"
    assert math.isfinite(result.summary["final_train_loss"])
