"""The functional rules with per-member hyper-parameters ([K] tensors, as a population
stacks them) against torch.optim, member by member."""
import pytest
import torch

from optlab.optim import functional

GRADS = [torch.tensor([[0.5, -1.0, 0.25], [0.2, 0.3, -0.4], [-0.7, 0.1, 0.9]]),
         torch.tensor([[0.2, 0.3, -0.4], [0.5, -1.0, 0.25], [0.3, 0.3, 0.3]])]
W0 = torch.tensor([[1.0, -2.0, 0.5], [0.1, 0.2, 0.3], [-1.0, 0.0, 2.0]])


def member_values(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(-1, 1)  # [K, 1]: broadcast over a member's tensor


def test_adadelta_with_per_member_hyper_parameters_is_each_members_torch_optim_run():
    members = [{"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
               {"lr": 0.5, "rho": 0.5, "eps": 1e-3, "weight_decay": 0.01},
               {"lr": 2.0, "rho": 0.99, "eps": 1e-4, "weight_decay": 0.1}]
    h = {key: member_values([m[key] for m in members]) for key in members[0]}
    stacked = W0.clone()
    state = functional.adadelta.init(stacked, h)
    for g in GRADS:
        functional.adadelta.update(stacked, g, state, h)
    for k, m in enumerate(members):
        w = torch.nn.Parameter(W0[k].clone())
        opt = torch.optim.Adadelta([w], foreach=False, **m)
        for g in GRADS:
            w.grad = g[k].clone()
            opt.step()
        assert torch.allclose(stacked[k], w.detach(), rtol=1e-6, atol=1e-7), k
        assert torch.allclose(state["acc_delta"][k], opt.state[w]["acc_delta"], rtol=1e-5), k
    assert not torch.equal(stacked, W0)


def sign_init(param: torch.Tensor, h: dict) -> dict:
    return {}


def sign_update(param: torch.Tensor, grad: torch.Tensor, state: dict, h: dict) -> None:
    """signSGD: w -= lr * sign(g), with lr a number or a member's value."""
    scale = -h["lr"]
    functional.add_scaled(param, grad.sign(), scale.to(param.dtype) if torch.is_tensor(scale) else scale)


def test_a_new_rule_is_one_entry_and_trains_solo_and_in_a_population(tmp_path, monkeypatch):
    """An (init, update) pair and one registry entry (plus its YAML option) are all a new
    update rule needs: it trains a solo run, and a population whose members equal their
    solo runs to float32 rounding."""
    from optlab.config.compose import compose
    from optlab.optim.optimizers import OPTIMIZERS, OptimizerSpec, lr_key
    from optlab.training.api import train, train_many

    spec = OptimizerSpec(name="signsgd", cls=torch.optim.SGD, rule=functional.UpdateRule(sign_init, sign_update),
                         rule_args=lambda group: {"lr": group["lr"]}, keys=(lr_key(0.01),),
                         description="signSGD: w -= lr * sign(g).")
    monkeypatch.setitem(OPTIMIZERS._specs, "signsgd", spec)
    (tmp_path / "conf" / "optimizer").mkdir(parents=True)
    (tmp_path / "conf" / "optimizer" / "signsgd.yaml").write_text("name: signsgd\nlr: 0.01\n")
    cfgs = [compose(["optimizer=signsgd", f"optimizer.lr={lr}", f"trainer.seed={seed}", "model.width=16",
                     "trainer.epochs=2", "trainer.progress=false", f"trainer.out_dir={tmp_path}"],
                    str(tmp_path / "conf")) for seed, lr in ((0, 0.01), (1, 0.003))]
    members = train_many(cfgs, population=2)
    alone = [train(cfg) for cfg in cfgs]
    assert [m.summary["execution"] for m in members] == ["population", "population"]
    for member, solo in zip(members, alone):
        assert member.status == solo.status == "completed"
        assert member.summary["final_val_loss"] == pytest.approx(solo.summary["final_val_loss"], rel=1e-4)
        assert solo.summary["final_val_acc"] > 0.5
