"""Explicit regularization against its math: L1/L2 penalties, clipping, label smoothing, dropout."""
import math

import pytest
import torch
import torch.nn.functional as F

from optlab.config.compose import as_plain, compose, group_options
from optlab.nn.models import build_model
from optlab.optim.optimizers import build_optimizer
from optlab.optim.regularize import REGULARIZE, clip_gradients, loss_fn, penalty, penalty_of, task_loss
from optlab.training.api import train


def small_net(bias=True) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4, bias=bias), torch.nn.Linear(4, 2, bias=bias))


def penalty_grads(net, reg: dict) -> list[torch.Tensor]:
    net.zero_grad()
    penalty(net, reg).backward()
    return [p.grad for p in net.parameters()]


def test_l2_penalty_value_and_gradient_l2_times_w_on_weights_only():
    net = small_net()
    weights = [net[0].weight, net[1].weight]
    value = penalty(net, REGULARIZE.defaults(l2=0.1, l1=0.0))
    assert value.item() == pytest.approx(0.5 * 0.1 * sum((w ** 2).sum().item() for w in weights))
    grads = penalty_grads(net, REGULARIZE.defaults(l2=0.1))
    assert torch.allclose(grads[0], 0.1 * net[0].weight) and torch.allclose(grads[2], 0.1 * net[1].weight)
    assert grads[1] is None and grads[3] is None  # biases are not penalized


def test_l1_penalty_adds_l1_times_sign_of_w():
    net = small_net()
    grads = penalty_grads(net, REGULARIZE.defaults(l1=0.01))
    assert torch.allclose(grads[0], 0.01 * net[0].weight.sign())
    assert penalty(net, REGULARIZE.defaults(l1=0.01)).item() == pytest.approx(
        0.01 * (net[0].weight.abs().sum() + net[1].weight.abs().sum()).item())


def test_no_penalty_when_both_are_zero():
    assert penalty(small_net(), REGULARIZE.defaults()) == 0.0


def test_l2_penalty_step_equals_coupled_sgd_weight_decay():
    x, y = torch.randn(5, 3, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 1, 0, 1])

    def one_step(weight_decay: float, l2: float) -> list[torch.Tensor]:
        net = small_net(bias=False)
        opt = build_optimizer(net.parameters(), {"name": "sgd", "lr": 0.5, "weight_decay": weight_decay})
        (F.cross_entropy(net(x), y) + penalty(net, REGULARIZE.defaults(l2=l2))).backward()
        opt.step()
        return [p.detach() for p in net.parameters()]

    for a, b in zip(one_step(weight_decay=0.2, l2=0.0), one_step(weight_decay=0.0, l2=0.2)):
        assert torch.allclose(a, b, atol=1e-6)


def grads_of(*grads: list[float]) -> list[torch.nn.Parameter]:
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(len(g)))
        p.grad = torch.tensor(g)
        params.append(p)
    return params


def test_clip_norm_rescales_the_global_norm_and_reports_it_before_clipping():
    params = grads_of([3.0, 0.0], [0.0, 4.0])  # global norm 5
    before = clip_gradients([p.grad for p in params], clip_norm=1.0)
    assert before.item() == pytest.approx(5.0)
    assert torch.allclose(torch.cat([p.grad for p in params]), torch.tensor([0.6, 0.0, 0.0, 0.8]), atol=1e-5)


def test_clip_norm_leaves_small_gradients_alone():
    params = grads_of([0.3, 0.4])
    clip_gradients([p.grad for p in params], clip_norm=1.0)
    assert torch.allclose(params[0].grad, torch.tensor([0.3, 0.4]))


def test_clip_value_clamps_each_element():
    params = grads_of([3.0, -0.2, -7.0])
    norm = clip_gradients([p.grad for p in params], clip_value=0.5)
    assert torch.equal(params[0].grad, torch.tensor([0.5, -0.2, -0.5]))
    assert norm.item() == pytest.approx(math.sqrt(0.5 ** 2 + 0.2 ** 2 + 0.5 ** 2))


def test_no_clipping_leaves_the_gradients_and_reports_their_norm():
    params = grads_of([3.0, 4.0])
    assert clip_gradients([p.grad for p in params]).item() == pytest.approx(5.0)
    assert torch.equal(params[0].grad, torch.tensor([3.0, 4.0]))


def test_label_smoothing_loss_formula():
    eps, k = 0.1, 4
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 3.0]])
    y = torch.tensor([0, 2])
    loss = loss_fn("classification", {"regularize": {"label_smoothing": eps}})
    log_p = logits.log_softmax(1)
    # target q = (1 - eps) * one_hot + eps / k; loss = -sum q log p, averaged over the batch
    by_hand = -((1 - eps) * log_p[torch.arange(2), y] + eps / k * log_p.sum(1)).mean()
    assert loss(logits, y).item() == pytest.approx(by_hand.item())


def test_dropout_override_reaches_the_model_and_is_identity_in_eval():
    c = as_plain(compose(["model=mlp", "model.dropout=0.0", "regularize.dropout=0.5"]))
    model = build_model(c, (1, 8, 8), 10)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates and all(p == 0.5 for p in rates)
    x = torch.randn(16, 1, 8, 8)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_a_run_with_every_regularizer_on_completes(compose_cfg):
    result = train(compose_cfg("data=moons", "trainer.epochs=1", "regularize.l1=1e-4", "regularize.l2=1e-3",
                               "regularize.clip_norm=1.0", "regularize.clip_value=0.5",
                               "regularize.label_smoothing=0.1", "regularize.dropout=0.2"))
    assert result.status == "completed" and math.isfinite(result.summary["final_train_loss"])


@pytest.mark.parametrize("option", group_options("regularize"))
def test_every_regularize_option_trains_one_tiny_epoch(compose_cfg, option):
    result = train(compose_cfg(f"regularize={option}", "trainer.epochs=1", "data=moons"))
    assert result.status == "completed"
    assert math.isfinite(result.summary["final_train_loss"])


MEMBERS = [{"l1": 0.0, "l2": 0.1, "smoothing": 0.0, "clip_value": math.inf, "clip_norm": 0.5},
           {"l1": 0.01, "l2": 0.0, "smoothing": 0.2, "clip_value": 0.3, "clip_norm": math.inf},
           {"l1": 0.02, "l2": 0.3, "smoothing": 0.1, "clip_value": 0.1, "clip_norm": 0.05}]


def member_values(key: str) -> torch.Tensor:
    return torch.tensor([m[key] for m in MEMBERS])


@pytest.mark.parametrize("soft", [False, True])
def test_each_members_loss_is_its_own_runs_loss(soft):
    """[K, B, C] outputs with [K] label smoothing: member k's loss is the one-run loss with its value."""
    g = torch.Generator().manual_seed(0)
    out = torch.randn(len(MEMBERS), 6, 4, generator=g)
    y = torch.randint(0, 4, (len(MEMBERS), 6), generator=g)
    if soft:
        y = torch.softmax(torch.randn(len(MEMBERS), 6, 4, generator=g), -1)
    per_member = task_loss(out, y, "classification", member_values("smoothing"), members=True)
    for k, m in enumerate(MEMBERS):
        assert per_member[k].item() == pytest.approx(task_loss(out[k], y[k], "classification", m["smoothing"]).item(),
                                                     rel=1e-6)
    regression = task_loss(out, out.flip(-1), "regression", members=True)
    assert regression[1].item() == pytest.approx(task_loss(out[1], out[1].flip(-1), "regression").item(), rel=1e-6)


def test_each_members_penalty_and_clipping_are_its_own_runs():
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(len(MEMBERS), 4, 3, generator=g), torch.randn(len(MEMBERS), 2, 4, generator=g)]
    grads = [torch.randn(len(MEMBERS), 4, 3, generator=g), torch.randn(len(MEMBERS), 4, generator=g)]
    penalties = penalty_of(weights, member_values("l1"), member_values("l2"), members=True)
    clipped = [t.clone() for t in grads]
    norms = clip_gradients(clipped, member_values("clip_value"), member_values("clip_norm"), members=True)
    for k, m in enumerate(MEMBERS):
        alone = penalty_of([w[k] for w in weights], m["l1"], m["l2"])
        assert penalties[k].item() == pytest.approx(float(alone), rel=1e-6)
        own = [t[k].clone() for t in grads]
        norm = clip_gradients(own, m["clip_value"] if math.isfinite(m["clip_value"]) else None,
                              m["clip_norm"] if math.isfinite(m["clip_norm"]) else None)
        assert norms[k].item() == pytest.approx(norm.item(), rel=1e-6)
        for a, b in zip(clipped, own):
            assert torch.allclose(a[k], b, rtol=1e-5, atol=1e-7)
