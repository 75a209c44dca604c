"""The functional rules with per-member hyper-parameters ([K] tensors, as a population
stacks them) against torch.optim, member by member."""
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
    state = {"step": torch.zeros(3, 1), "square_avg": torch.zeros_like(W0), "acc_delta": torch.zeros_like(W0)}
    for g in GRADS:
        functional.adadelta(stacked, g, state, h)
    for k, m in enumerate(members):
        w = torch.nn.Parameter(W0[k].clone())
        opt = torch.optim.Adadelta([w], foreach=False, **m)
        for g in GRADS:
            w.grad = g[k].clone()
            opt.step()
        assert torch.allclose(stacked[k], w.detach(), rtol=1e-6, atol=1e-7), k
        assert torch.allclose(state["acc_delta"][k], opt.state[w]["acc_delta"], rtol=1e-5), k
    assert not torch.equal(stacked, W0)
