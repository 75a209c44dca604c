"""Second-order methods that re-evaluate the objective: damped Newton and L-BFGS's closure.

A closure optimizer's step gets a BatchObjective: the training objective (the data's loss
plus the L1/L2 penalties) on the step's batch. Called, it recomputes the gradients and
returns the objective (torch's closure convention, which L-BFGS's line search calls);
`over(params)` is the same objective as a pure function of those parameters flattened
into one vector, which Newton differentiates twice with torch.func.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.func import functional_call

from optlab.errors import ConfigError, TrainingFailed
from optlab.optim.regularize import is_penalized, penalty, penalty_of


class BatchObjective:
    """loss(model(x), y) + penalties on one batch, for `params` (the optimizer's, in order)."""

    def __init__(self, model: torch.nn.Module, params: list[torch.nn.Parameter],
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], reg: dict,
                 x: torch.Tensor, y: torch.Tensor):
        self.model, self.params, self.loss, self.reg, self.x, self.y = model, params, loss, reg, x, y

    def __call__(self) -> torch.Tensor:
        """Zero the gradients, recompute them, return the objective (torch.optim's closure)."""
        for p in self.params:
            p.grad = None
        objective = self.loss(self.model(self.x), self.y) + penalty(self.model, self.reg)
        objective.backward()
        return objective

    def over(self, params: list[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """The objective as a pure function of `params` flattened into one vector in that
        order (the model's other parameters as they are)."""
        named = dict(self.model.named_parameters())
        index = {id(p): name for name, p in named.items()}
        sizes = [p.numel() for p in params]

        def objective(flat: torch.Tensor) -> torch.Tensor:
            replaced = {index[id(p)]: chunk.view_as(p) for p, chunk in zip(params, flat.split(sizes))}
            weights = [replaced.get(name, p) for name, p in named.items() if is_penalized(p)]
            out = functional_call(self.model, {**named, **replaced}, (self.x,))
            return self.loss(out, self.y) + penalty_of(weights, float(self.reg["l1"]), float(self.reg["l2"]))
        return objective


class Newton(torch.optim.Optimizer):
    """Damped Newton on the step's batch: w -= lr * (H + damping * I)^-1 g, with g and the
    exact Hessian H of the objective over all parameters flattened into one vector
    (exact_hessian). weight_decay adds weight_decay/2 * ||w||^2 to the objective, as
    torch.optim's coupled weight decay adds weight_decay * w to the gradient. The solve is in
    float64; each param group's lr scales its own part of the step."""

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0, weight_decay: float = 0.0,
                 max_params: int = 20000):
        super().__init__(params, {"lr": lr, "damping": damping, "weight_decay": weight_decay})
        count = sum(p.numel() for group in self.param_groups for p in group["params"])
        if count > max_params:
            raise ConfigError(f"optimizer=newton: the model has {count} parameters, more than "
                              f"optimizer.max_params={max_params} (its Hessian has {count}^2 entries)")

    @torch.no_grad()
    def step(self, closure: BatchObjective) -> torch.Tensor:
        params = [p for group in self.param_groups for p in group["params"]]
        w = torch.cat([p.detach().reshape(-1) for p in params])
        group = self.param_groups[0]
        objective = closure.over(params)
        with torch.enable_grad():
            g, value = torch.func.grad_and_value(objective)(w)
            hessian = exact_hessian(objective, w)
        decay, damping = float(group["weight_decay"]), float(group["damping"])
        g = g.double() + decay * w.double()
        system = hessian.double() + (decay + damping) * torch.eye(len(w), dtype=torch.float64, device=w.device)
        try:
            direction = torch.linalg.solve(system, g).to(w.dtype)
        except torch.linalg.LinAlgError:
            direction = torch.full_like(w, math.nan)
        if not bool(torch.isfinite(direction).all()):  # singular, or singular in float64 rounding
            raise TrainingFailed("optimizer=newton: H + damping * I is singular (a softmax's Hessian is); "
                                 "set optimizer.damping > 0")
        chunks = iter(direction.split([p.numel() for p in params]))
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(next(chunks).view_as(p), alpha=-group["lr"])
        return value + 0.5 * decay * w.pow(2).sum()


HESSIAN_COLUMNS = 256  # columns per vectorized pass: bounds the memory to that many copies of the activations


def exact_hessian(f: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor) -> torch.Tensor:
    """f's Hessian at w: the Jacobian of its gradient, by reverse mode over reverse mode
    (torch.func.jacrev of torch.func.grad), HESSIAN_COLUMNS rows at a time: torch.func.hessian
    takes every column at once, whose memory grows with the square of the size."""
    return torch.func.jacrev(torch.func.grad(f), chunk_size=HESSIAN_COLUMNS)(w)


def check_pure_forward(model: torch.nn.Module) -> None:
    """Newton's Hessian needs a forward that is a function of the parameters alone: no
    running statistics written, no random masks."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            raise ConfigError(f"optimizer=newton: layer {name} is batch norm, whose forward updates running "
                              "statistics; use norm=none or norm=layer")
        if isinstance(module, torch.nn.modules.dropout._DropoutNd) and module.p > 0:
            raise ConfigError(f"optimizer=newton: layer {name} is dropout (random masks); set model.dropout=0")
