"""Per-layer statistics against what the lectures predict, and one step computed by hand."""
import csv

import pytest
import torch
import torch.nn as nn

from optlab.nn.models import Block
from optlab.training.diagnostics import LAYER_COLUMNS, LayerProbe
from optlab.training.api import train


def initial_layers(compose_cfg, *overrides):
    """layers.csv rows recorded before the first step (epochs=0: nothing else runs)."""
    result = train(compose_cfg("trainer.epochs=0", "trainer.diagnostics=true", *overrides))
    with open(result.run_dir / "layers.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == LAYER_COLUMNS
    return [{k: float(v) if k not in ("name", "kind") else v for k, v in r.items()} for r in rows]


DEEP_TANH = ("model=mlp", "model.depth=20", "model.width=64", "activation=tanh")


def test_small_gaussian_init_kills_the_signal_in_a_deep_tanh_net(compose_cfg):
    rows = initial_layers(compose_cfg, *DEEP_TANH, "init=normal", "init.std=0.01")
    assert len(rows) == 20
    first, last = rows[0]["act_std"], rows[-1]["act_std"]
    assert last < first * 1e-3  # orders of magnitude smaller after 20 layers


def test_xavier_keeps_the_signal_within_a_small_factor(compose_cfg):
    rows = initial_layers(compose_cfg, *DEEP_TANH, "init=xavier_uniform")
    first, last = rows[0]["act_std"], rows[-1]["act_std"]
    assert first / 5 < last < first * 5


@pytest.mark.parametrize("init", [("init=kaiming_normal",), ("init=xavier_uniform", "init.gain=activation")])
def test_a_gain_above_one_keeps_the_deep_tanh_signal_flat(compose_cfg, init):
    """He et al.'s sqrt(2) and tanh's own gain 5/3 both outweigh tanh's squashing."""
    rows = initial_layers(compose_cfg, *DEEP_TANH, *init)
    first, last = rows[0]["act_std"], rows[-1]["act_std"]
    assert first / 2 < last < first * 2


def test_large_negative_bias_kills_relu_units(compose_cfg):
    rows = initial_layers(compose_cfg, "model=mlp", "model.depth=3", "activation=relu",
                          "init.bias.name=constant", "init.bias.value=-10.0")
    assert all(r["dead_frac"] > 0.95 for r in rows)


def test_large_weights_saturate_sigmoid_units(compose_cfg):
    rows = initial_layers(compose_cfg, "model=mlp", "model.depth=3", "activation=sigmoid",
                          "init=normal", "init.std=5.0")
    assert all(r["saturated_frac"] > 0.9 for r in rows)
    healthy = initial_layers(compose_cfg, "model=mlp", "model.depth=3", "activation=sigmoid", "init=xavier_uniform")
    assert all(r["saturated_frac"] < 0.1 for r in healthy)


def test_update_to_weight_ratio_matches_one_sgd_step_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(Block(nn.Linear(4, 3), nn.ReLU()), nn.Linear(3, 2))
    lr = 0.1
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    probe = LayerProbe(model)
    with probe.forward():
        out = model(x)
    nn.functional.cross_entropy(out, y).backward()
    weight = model[0][0].weight
    expected = (lr * weight.grad.norm() / weight.detach().norm()).item()
    probe.step(optimizer.step)
    row = probe.rows(epoch=0, step=1)[0]
    assert row["update_ratio"] == pytest.approx(expected, rel=1e-5)
    assert row["grad_norm"] == pytest.approx(weight.grad.norm().item(), rel=1e-6)


def test_records_initial_and_every_nth_epoch(compose_cfg):
    result = train(compose_cfg("trainer.epochs=4", "trainer.diagnostics=true", "diagnostics.every=2",
                               "model.depth=2"))
    with open(result.run_dir / "layers.csv") as f:
        epochs = sorted({int(r["epoch"]) for r in csv.DictReader(f)})
    assert epochs == [-1, 1, 3]


def test_diagnostics_do_not_change_the_training(compose_cfg):
    def metrics(run_dir):
        with open(run_dir / "metrics.csv") as f:
            return [(r["train_loss"], r["val_loss"]) for r in csv.DictReader(f)]

    plain = metrics(train(compose_cfg("norm=batch", "model.dropout=0.2")).run_dir)
    probed = metrics(train(compose_cfg("norm=batch", "model.dropout=0.2", "trainer.diagnostics=true")).run_dir)
    assert plain == probed
