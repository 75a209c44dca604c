"""Each optimizer's update against the formula computed by hand; gd's one step per epoch."""
import csv
import math

import pytest
import torch

from optlab.config.compose import compose, group_options
from optlab.errors import ConfigError
from optlab.optim.optimizers import (
    LR_SCALE,
    OPTIMIZERS,
    build_optimizer,
    clear_gradients,
    is_full_batch,
)
from optlab.training.api import train

W0 = torch.tensor([1.0, -2.0, 0.5])
GRADS = [torch.tensor([0.5, -1.0, 0.25]), torch.tensor([0.2, 0.3, -0.4])]


def option_cfg(name: str, **overrides) -> dict:
    """The option's defaults (its spec's, which its YAML declares) with some values replaced,
    as the loop receives them."""
    return OPTIMIZERS.get(name).defaults(**overrides)


def apply_grads(cfg: dict, grads=GRADS) -> torch.Tensor:
    """w after one optimizer step per gradient in grads, starting from W0."""
    w = torch.nn.Parameter(W0.clone())
    opt = build_optimizer([w], cfg)
    for g in grads:
        w.grad = g.clone()
        opt.step()
    return w.detach()


def test_every_registered_optimizer_has_a_yaml():
    assert set(OPTIMIZERS.names()) == set(group_options("optimizer"))


def test_sgd_is_plain_gradient_steps():
    lr = 0.1
    expected = W0 - lr * GRADS[0] - lr * GRADS[1]
    assert torch.allclose(apply_grads(option_cfg("sgd", lr=lr)), expected)


def test_gd_is_plain_gradient_steps_on_the_full_batch():
    cfg = option_cfg("gd", lr=0.3)
    assert is_full_batch(cfg) and not is_full_batch(option_cfg("sgd"))
    assert torch.allclose(apply_grads(cfg, GRADS[:1]), W0 - 0.3 * GRADS[0])


def test_heavy_ball_momentum():
    lr, mu = 0.1, 0.9
    v = GRADS[0]                      # v = mu * 0 + g1
    w = W0 - lr * v
    v = mu * v + GRADS[1]
    w = w - lr * v
    assert torch.allclose(apply_grads(option_cfg("momentum", lr=lr, momentum=mu)), w)


def test_nesterov_momentum_looks_ahead():
    lr, mu = 0.1, 0.9
    v = GRADS[0]
    w = W0 - lr * (GRADS[0] + mu * v)
    v = mu * v + GRADS[1]
    w = w - lr * (GRADS[1] + mu * v)
    got = apply_grads(option_cfg("nesterov", lr=lr, momentum=mu))
    assert torch.allclose(got, w)
    assert not torch.allclose(got, apply_grads(option_cfg("momentum", lr=lr, momentum=mu)))


def test_adagrad_divides_by_root_of_summed_squares():
    lr, eps, g0 = 0.5, 1e-10, 0.1
    accum, w = torch.full_like(W0, g0), W0.clone()
    for g in GRADS:
        accum = accum + g * g
        w = w - lr * g / (accum.sqrt() + eps)
    cfg = option_cfg("adagrad", lr=lr, eps=eps, initial_accumulator_value=g0)
    assert torch.allclose(apply_grads(cfg), w)


def test_rmsprop_divides_by_root_of_running_mean_square():
    lr, alpha, eps = 0.01, 0.9, 1e-8
    s, w = torch.zeros_like(W0), W0.clone()
    for g in GRADS:
        s = alpha * s + (1 - alpha) * g * g
        w = w - lr * g / (s.sqrt() + eps)
    assert torch.allclose(apply_grads(option_cfg("rmsprop", lr=lr, alpha=alpha, eps=eps)), w)


def adam_by_hand(lr, b1, b2, eps, weight_decay=0.0, decoupled=False) -> torch.Tensor:
    m, v, w = torch.zeros_like(W0), torch.zeros_like(W0), W0.clone()
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            w = w - lr * weight_decay * w
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * m_hat / (v_hat.sqrt() + eps)
    return w


def test_adam_bias_corrected_moments():
    cfg = option_cfg("adam", lr=0.01, betas=[0.8, 0.95], eps=1e-8)
    assert torch.allclose(apply_grads(cfg), adam_by_hand(0.01, 0.8, 0.95, 1e-8))


def test_adam_weight_decay_is_l2_in_the_gradient_and_adamw_decouples_it():
    args = dict(lr=0.01, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.1)
    adam, adamw = apply_grads(option_cfg("adam", **args)), apply_grads(option_cfg("adamw", **args))
    assert torch.allclose(adam, adam_by_hand(0.01, 0.9, 0.999, 1e-8, weight_decay=0.1))
    assert torch.allclose(adamw, adam_by_hand(0.01, 0.9, 0.999, 1e-8, weight_decay=0.1, decoupled=True))
    assert not torch.allclose(adam, adamw, atol=1e-4)


def test_adadelta_first_two_updates_are_zeilers_formula():
    """Zeiler 2012, Algorithm 1, by hand: E[g^2] = rho E[g^2] + (1-rho) g^2;
    dx = -sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g; E[dx^2] = rho E[dx^2] + (1-rho) dx^2;
    x += lr * dx (lr 1.0 is the paper's rule)."""
    rho, eps = 0.9, 1e-6
    s1 = 0.1 * GRADS[0] ** 2                                 # E[g^2] after g1
    dx1 = -((0 + eps) ** 0.5) / (s1 + eps).sqrt() * GRADS[0]  # E[dx^2] starts at 0
    u1 = 0.1 * dx1 ** 2
    s2 = 0.9 * s1 + 0.1 * GRADS[1] ** 2
    dx2 = -(u1 + eps).sqrt() / (s2 + eps).sqrt() * GRADS[1]
    cfg = option_cfg("adadelta")
    assert cfg["lr"] == 1.0 and cfg["rho"] == rho and cfg["eps"] == eps
    assert torch.allclose(apply_grads(cfg, GRADS[:1]), W0 + dx1, rtol=0, atol=1e-6)
    assert torch.allclose(apply_grads(cfg), W0 + dx1 + dx2, rtol=0, atol=1e-6)
    halved = apply_grads(option_cfg("adadelta", lr=0.5))
    assert torch.allclose(halved, W0 + 0.5 * (dx1 + dx2), rtol=0, atol=1e-6)


def test_sgd_weight_decay_adds_decay_times_w_to_the_gradient():
    got = apply_grads(option_cfg("sgd", lr=0.1, weight_decay=0.5), GRADS[:1])
    assert torch.allclose(got, W0 - 0.1 * (GRADS[0] + 0.5 * W0))


def test_bad_betas_are_a_config_error():
    with pytest.raises(ConfigError, match=r"optimizer.betas=\[0.9, 1.5\]"):
        apply_grads(option_cfg("adam", betas=[0.9, 1.5]))


@pytest.mark.parametrize("override, fragment", [
    ("optimizer=rmsprop optimizer.alpha=1.0", "optimizer.alpha=1.0: must be in [0, 1)"),
    ("optimizer=adagrad optimizer.initial_accumulator_value=-1", "must be >= 0"),
    ("optimizer=sgd optimizer.momentum=0.9", "optimizer.momentum: unknown key"),
])
def test_bad_optimizer_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as info:
        compose(override.split())
    assert fragment in str(info.value)


def metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_gd_takes_exactly_one_step_per_epoch_on_the_whole_split(compose_cfg):
    table = metrics(train(compose_cfg("optimizer=gd", "data=moons")).run_dir)
    assert [int(r["step"]) for r in table] == [1, 2]
    assert [int(r["batch_size"]) for r in table] == [800, 800]  # moons: 1000 samples, 20% held out


TINY = {"newton": ("model.width=8", "optimizer.damping=1.0")}  # a Hessian of the default MLP's 17,000 parameters would take minutes


@pytest.mark.parametrize("option", [o for o in group_options("optimizer") if o != "custom"])
def test_every_optimizer_option_trains_one_tiny_epoch(compose_cfg, option):
    result = train(compose_cfg(f"optimizer={option}", "trainer.epochs=1", "data=moons", *TINY.get(option, ())))
    assert result.status == "completed"
    assert math.isfinite(result.summary["final_train_loss"])


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))


def torch_class_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    """The torch.optim class the option's arithmetic is, built as torch.optim itself would be."""
    spec = OPTIMIZERS.get(cfg["name"])
    kwargs = {k.name: tuple(cfg[k.name]) if isinstance(cfg[k.name], list) else cfg[k.name]
              for k in spec.keys if k is not LR_SCALE}  # lr_scale makes param groups, not an argument
    return spec.cls(params, **kwargs, **spec.fixed)


def train_steps(model, opt, steps: range) -> None:
    for k in steps:
        clear_gradients(list(model.parameters()))
        model(torch.full((5, 4), 0.1 * (k + 1))).pow(2).sum().backward()
        opt.step()


# every option, and the settings that take another branch of its arithmetic
FUNCTIONAL = [name for name in sorted(OPTIMIZERS.names()) if OPTIMIZERS.get(name).rule is not None]
VARIANTS = [(name, {}) for name in FUNCTIONAL] + [
    ("adadelta", {"rho": 0.5, "eps": 1e-3, "lr": 0.5, "weight_decay": 0.01}),
    ("sgd", {"weight_decay": 0.01}), ("nesterov", {"weight_decay": 0.01}), ("momentum", {"momentum": 0.5}),
    ("adagrad", {"initial_accumulator_value": 0.1, "weight_decay": 0.01}), ("rmsprop", {"momentum": 0.9}),
    ("adam", {"weight_decay": 0.01, "betas": [0.8, 0.99]}), ("adamw", {"weight_decay": 0.0})]


@pytest.mark.parametrize("name, changes", VARIANTS, ids=[f"{n}-{c}" for n, c in VARIANTS])
def test_each_update_is_bitwise_the_torch_optim_classes(name, changes):
    cfg = option_cfg(name, **changes)
    ours, theirs = small_model(), small_model()
    train_steps(ours, build_optimizer(ours.parameters(), cfg), range(5))
    train_steps(theirs, torch_class_optimizer(theirs.parameters(), cfg), range(5))
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(ours.parameters(), small_model().parameters()))  # it did step


@pytest.mark.parametrize("name, changes", VARIANTS, ids=[f"{n}-{c}" for n, c in VARIANTS])
def test_state_dicts_move_both_ways_between_the_two(name, changes):
    """A checkpoint of either continues in the other to the same weights: old checkpoints
    (torch.optim's) resume, and ours load into torch.optim."""
    cfg = option_cfg(name, **changes)
    for first, second in ((build_optimizer, torch_class_optimizer), (torch_class_optimizer, build_optimizer)):
        model, reference = small_model(), small_model()
        opt = first(model.parameters(), cfg)
        train_steps(model, opt, range(2))
        resumed = second(model.parameters(), cfg)
        resumed.load_state_dict(opt.state_dict())
        train_steps(model, resumed, range(2, 5))
        train_steps(reference, first(reference.parameters(), cfg), range(5))
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters())), first.__name__


def test_a_state_dict_for_another_model_is_refused():
    opt = build_optimizer(small_model().parameters(), option_cfg("adam"))
    with pytest.raises(ValueError, match="parameters"):
        opt.load_state_dict(build_optimizer([torch.nn.Parameter(W0.clone())], option_cfg("adam")).state_dict())


@pytest.mark.slow
def test_a_run_never_imports_torch_dynamo(tmp_path):
    """torch.optim's first construction imports torch._dynamo (seconds of start-up): a run
    of an option with a functional form builds no torch.optim object."""
    import subprocess
    import sys

    code = ("import sys; from optlab.config.compose import compose; from optlab.training.api import train; "
            "train(compose(['trainer.epochs=1', 'trainer.progress=false', 'optimizer=adam', "
            f"'trainer.out_dir={tmp_path}'])); print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
