"""Newton and L-BFGS against the closed-form least-squares solution; Newton's step against
its formula; the settings they cannot honour exit 2."""
import csv

import pytest
import torch

from optlab.errors import ConfigError
from optlab.optim.regularize import loss_fn
from optlab.optim.second_order import BatchObjective, Newton
from optlab.training.build import build
from optlab.training.api import train


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def least_squares_val_loss(cfg) -> float:
    """The validation MSE of the closed-form solution on the run's own standardized training
    split (torch.linalg.lstsq in float64, with a column of ones for the bias)."""
    data = build(cfg).data
    x, y = data.x_train.double().flatten(1), data.y_train.double()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    coef = torch.linalg.lstsq(design, y.unsqueeze(1)).solution
    xv = torch.cat([data.x_val.double().flatten(1), torch.ones(len(data.x_val), 1, dtype=x.dtype)], dim=1)
    return float((xv @ coef).squeeze(1).sub(data.y_val.double()).pow(2).mean())


def test_newton_reaches_the_least_squares_solution_in_its_first_step(compose_cfg):
    cfg = compose_cfg("data=linreg", "model=linear", "optimizer=newton", "optimizer.lr=1", "trainer.epochs=2")
    table = rows(train(cfg).run_dir)
    best = least_squares_val_loss(cfg)
    assert [int(r["step"]) for r in table] == [1, 2]  # one step per epoch, like gd
    assert [int(r["batch_size"]) for r in table] == [800, 800]
    for row in table:
        assert abs(float(row["val_loss"]) - best) / best < 1e-4, (row["val_loss"], best)
    assert float(table[0]["train_loss"]) > 100 * best  # the first epoch's loss is the init's


def test_lbfgs_reaches_the_least_squares_solution_in_a_few_epochs(compose_cfg):
    for search in ("null", "strong_wolfe"):
        cfg = compose_cfg("data=linreg", "model=linear", "optimizer=lbfgs", f"optimizer.line_search_fn={search}",
                          "trainer.epochs=3")
        table = rows(train(cfg).run_dir)
        best = least_squares_val_loss(cfg)
        assert [int(r["step"]) for r in table] == [1, 2, 3]
        assert abs(float(table[-1]["val_loss"]) - best) / best < 1e-4, (search, table[-1]["val_loss"], best)


def quadratic_objective(a: torch.Tensor, b: torch.Tensor, w: torch.nn.Parameter) -> BatchObjective:
    """0.5 * w^T A w - b^T w, as a BatchObjective of a model whose one parameter is w."""
    model = torch.nn.Module()
    model.w = w
    model.forward = lambda x: x  # the batch is unused: the objective reads the parameter only

    class Quadratic(BatchObjective):
        def over(self, params):
            return lambda flat: 0.5 * flat @ a @ flat - b @ flat
    return Quadratic(model, [w], None, {"l1": 0.0, "l2": 0.0}, None, None)


def test_a_newton_step_is_w_minus_lr_times_the_damped_inverse_hessian_times_the_gradient():
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]])
    b = torch.tensor([1.0, -1.0])
    w0 = torch.tensor([0.5, 0.25])
    lr, damping, decay = 0.5, 0.1, 0.2
    w = torch.nn.Parameter(w0.clone())
    Newton([w], lr=lr, damping=damping, weight_decay=decay).step(quadratic_objective(a, b, w))
    g = a @ w0 - b + decay * w0                        # the gradient, with L2 weight decay
    h = a + (decay + damping) * torch.eye(2)           # its Hessian, damped
    assert torch.allclose(w.detach(), w0 - lr * torch.linalg.solve(h, g), atol=1e-6)
    exact = torch.nn.Parameter(w0.clone())
    Newton([exact], lr=1.0).step(quadratic_objective(a, b, exact))
    assert torch.allclose(exact.detach(), torch.linalg.solve(a, b), atol=1e-6)  # one full step: the minimum


def test_newton_above_max_params_exits_2_naming_the_count():
    params = [torch.nn.Parameter(torch.zeros(30, 10)), torch.nn.Parameter(torch.zeros(5))]
    with pytest.raises(ConfigError, match=r"the model has 305 parameters, more than optimizer.max_params=300"):
        Newton(params, max_params=300)


@pytest.mark.parametrize("overrides, fragment", [
    (("optimizer=newton", "norm=batch", "model.width=4"), "batch norm"),
    (("optimizer=newton", "model.dropout=0.5", "model.width=4"), "dropout"),
    (("optimizer=lbfgs", "regularize.clip_norm=1.0"), "clip_norm"),
    (("optimizer=lbfgs", "batch=increasing"), "batch=increasing does not apply"),
])
def test_what_a_closure_optimizer_cannot_honour_is_a_config_error(compose_cfg, overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build(compose_cfg("data=moons", *overrides))


def test_the_lr_range_test_refuses_a_closure_optimizer(compose_cfg):
    from optlab.training.lrfind import run_range_test

    with pytest.raises(ConfigError, match="first-order"):
        run_range_test(compose_cfg("data=moons", "optimizer=lbfgs"), steps=3)


def test_newton_steps_the_same_whatever_the_order_of_its_param_groups():
    torch.manual_seed(0)
    x, y = torch.randn(50, 3), torch.randn(50)
    results = []
    for reverse in (False, True):
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 1)
        params = list(model.parameters())
        groups = [{"params": [p]} for p in (reversed(params) if reverse else params)]
        loss = loss_fn("regression", {})
        Newton(groups).step(BatchObjective(model, params, loss, {"l1": 0.0, "l2": 0.01}, x, y))
        results.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_undamped_newton_on_a_softmax_fails_saying_to_damp_and_damped_it_converges(compose_cfg):
    """A softmax's Hessian is singular (adding one vector to every class's weights changes
    nothing): pure Newton cannot step; with damping it reaches digits' logistic optimum fast."""
    from optlab.errors import TrainingFailed

    failed = train(compose_cfg("model=logistic", "optimizer=newton", "trainer.epochs=1"))
    assert failed.status == "failed" and isinstance(failed.error, TrainingFailed)
    assert "set optimizer.damping > 0" in str(failed.error)
    table = rows(train(compose_cfg("model=logistic", "optimizer=newton", "optimizer.damping=0.001",
                                   "trainer.epochs=3")).run_dir)
    assert float(table[-1]["val_acc"]) > 0.95


def test_the_hessian_in_column_chunks_is_torch_func_hessian(monkeypatch):
    from optlab.optim import second_order

    torch.manual_seed(0)
    x, y = torch.randn(40, 5), torch.randn(40)
    w = torch.randn(5 * 4 + 4 + 4 + 1)

    def f(v):
        hidden = torch.tanh(x @ v[:20].view(4, 5).T + v[20:24])
        return (hidden @ v[24:28] + v[28] - y).pow(2).mean()
    monkeypatch.setattr(second_order, "HESSIAN_COLUMNS", 7)  # 29 columns: 5 passes, the last one short
    assert torch.allclose(second_order.exact_hessian(f, w), torch.func.hessian(f)(w), rtol=1e-5, atol=1e-6)


def test_newton_above_max_params_exits_2_before_a_run_folder_exists(optlab, tmp_path):
    """The default MLP on digits: 64*128+128 + 128*128+128 + 128*10+10 = 26,122 parameters."""
    done = optlab("train", "optimizer=newton", "trainer.progress=false", f"trainer.out_dir={tmp_path / 'out'}")
    assert done.returncode == 2
    assert done.stderr.strip() == ("optlab: error: optimizer=newton: the model has 26122 parameters, more than "
                                   "optimizer.max_params=20000 (its Hessian has 26122^2 entries)")
    assert not (tmp_path / "out").exists()
