"""Update rules as (init, update) pairs: one implementation for a solo run and for a population.

Each rule is an UpdateRule, the shape of optax's GradientTransformation: `init(param, h)`
makes a parameter's state (a dict with torch.optim's own names: momentum_buffer, step,
exp_avg, ...), and `update(param, grad, state, h)` moves the parameter in place from its
gradient and that state. The parameter is one tensor, or a population's [K, ...] stack of
its members' tensors, and the hyper-parameters `h` (optax's inject_hyperparams) are
numbers, or [K] tensors with one value per member. Adding a rule is one UpdateRule and one
entry in optlab.optim.optimizers: solo runs and populations both train with it.
A hyper-parameter is a number in a solo run and a tensor broadcast over a population's
stacked parameters ([K, 1, ...]: one value per member, in float64 for the scalar arithmetic,
rounded to the parameter's dtype where it meets a tensor, as a Python number would be). With numbers, every rule does
torch.optim's single-tensor arithmetic in the same order with the same kernels, so a solo
update is bitwise torch.optim's (tests check it); with tensors it is the same arithmetic
with per-member values (tests check it against torch.optim member by member).

FunctionalOptimizer gives these rules the part of torch.optim's interface optlab uses
(param_groups with the lr, step, zero_grad, state_dict and load_state_dict in torch.optim's
own format, so checkpoints move between the two) without constructing a torch.optim object,
whose first construction imports torch._dynamo (seconds of start-up).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, NamedTuple

import torch
from torch.utils.hooks import RemovableHandle

Number = float | torch.Tensor


def add_scaled(target: torch.Tensor, tensor: torch.Tensor, scale: Number) -> torch.Tensor:
    """target += scale * tensor, in place: torch.optim's kernel for a number, addcmul for a tensor."""
    if isinstance(scale, torch.Tensor):
        return target.addcmul_(tensor, scale)
    return target.add_(tensor, alpha=scale)


def plus_scaled(tensor: torch.Tensor, other: torch.Tensor, scale: Number) -> torch.Tensor:
    """tensor + scale * other, as a new tensor."""
    if isinstance(scale, torch.Tensor):
        return tensor.addcmul(other, scale)
    return tensor.add(other, alpha=scale)


def _decayed(param: torch.Tensor, grad: torch.Tensor, h: dict) -> torch.Tensor:
    """The L2 term torch.optim adds to the gradient (coupled weight decay)."""
    wd = h["weight_decay"]
    if isinstance(wd, torch.Tensor) or wd != 0:
        return plus_scaled(grad, param, _as(wd, param))
    return grad


def _nonzero(value: Number) -> bool:
    return isinstance(value, torch.Tensor) or value != 0


def _step_count(state: dict) -> Number:
    """Increment the step counter (a CPU float tensor, as torch.optim keeps it) and read it
    (a population's per-member counters as float64, for the scalar arithmetic)."""
    state["step"] += 1
    step = state["step"]
    return step.item() if step.dim() == 0 else step.double()


def _sgd_update(param: torch.Tensor, grad: torch.Tensor, state: dict, h: dict) -> None:
    """torch.optim.SGD (dampening 0): gd, sgd, heavy-ball momentum and Nesterov."""
    grad = _decayed(param, grad, h)
    if _nonzero(h["momentum"]):
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.detach().clone()
        else:
            buf.mul_(_as(h["momentum"], param)).add_(grad)
        grad = plus_scaled(grad, buf, _as(h["momentum"], param)) if h["nesterov"] else buf
    add_scaled(param, grad, _as(-h["lr"], param))


def _adagrad_update(param: torch.Tensor, grad: torch.Tensor, state: dict, h: dict) -> None:
    """torch.optim.Adagrad (lr_decay 0): G += g^2; w -= lr * g / (sqrt(G) + eps)."""
    _step_count(state)
    grad = _decayed(param, grad, h)
    state["sum"].addcmul_(grad, grad, value=1)
    std = state["sum"].sqrt().add_(_as(h["eps"], param))
    if isinstance(h["lr"], torch.Tensor):
        param.sub_(grad / std * _as(h["lr"], param))
    else:
        param.addcdiv_(grad, std, value=-h["lr"])


def _rmsprop_update(param: torch.Tensor, grad: torch.Tensor, state: dict, h: dict) -> None:
    """torch.optim.RMSprop (not centered): s = alpha*s + (1-alpha)*g^2; w -= lr * g / (sqrt(s) + eps)."""
    _step_count(state)
    grad = _decayed(param, grad, h)
    square_avg, alpha = state["square_avg"], h["alpha"]
    if isinstance(alpha, torch.Tensor):
        square_avg.mul_(_as(alpha, param)).addcmul_(grad, grad * _as(1 - alpha, param))
    else:
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    avg = square_avg.sqrt().add_(_as(h["eps"], param))
    if "momentum_buffer" in state:
        buf = state["momentum_buffer"]
        buf.mul_(_as(h["momentum"], param)).addcdiv_(grad, avg)
        add_scaled(param, buf, _as(-h["lr"], param))
    elif isinstance(h["lr"], torch.Tensor):
        param.sub_(grad / avg * _as(h["lr"], param))
    else:
        param.addcdiv_(grad, avg, value=-h["lr"])


def _adam_update(param: torch.Tensor, grad: torch.Tensor, state: dict, h: dict) -> None:
    """torch.optim.Adam / AdamW (decoupled weight decay when h["decoupled"])."""
    step = _step_count(state)
    lr, beta1, beta2 = h["lr"], h["beta1"], h["beta2"]
    if h["decoupled"]:
        if _nonzero(h["weight_decay"]):
            param.mul_(_as(1 - lr * h["weight_decay"], param))
    else:
        grad = _decayed(param, grad, h)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.lerp_(grad, _as(1 - beta1, param))
    if isinstance(beta2, torch.Tensor):
        exp_avg_sq.mul_(_as(beta2, param)).addcmul_(grad, grad * _as(1 - beta2, param))
    else:
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    # the bias corrections and the step size in double precision, rounded once where they
    # meet the float32 tensors: what torch.optim does with Python numbers
    bias_correction1, bias_correction2 = 1 - beta1 ** step, 1 - beta2 ** step
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / _as(bias_correction2 ** 0.5, param)).add_(_as(h["eps"], param))
    if isinstance(step_size, torch.Tensor):
        param.sub_(exp_avg / denom * _as(step_size, param))
    else:
        param.addcdiv_(exp_avg, denom, value=-step_size)


def _adadelta_update(param: torch.Tensor, grad: torch.Tensor, state: dict, h: dict) -> None:
    """torch.optim.Adadelta (Zeiler 2012): s = rho*s + (1-rho)*g^2;
    delta = sqrt(u + eps) / sqrt(s + eps) * g; u = rho*u + (1-rho)*delta^2; w -= lr * delta."""
    _step_count(state)
    grad = _decayed(param, grad, h)
    square_avg, acc_delta, rho = state["square_avg"], state["acc_delta"], h["rho"]
    if isinstance(rho, torch.Tensor):
        square_avg.mul_(_as(rho, param)).addcmul_(grad, grad * _as(1 - rho, param))
    else:
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
    std = square_avg.add(_as(h["eps"], param)).sqrt_()
    delta = acc_delta.add(_as(h["eps"], param)).sqrt_().div_(std).mul_(grad)
    if isinstance(rho, torch.Tensor):
        acc_delta.mul_(_as(rho, param)).addcmul_(delta, delta * _as(1 - rho, param))
    else:
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    add_scaled(param, delta, _as(-h["lr"], param))


def _as(value: Number, like: torch.Tensor) -> Number:
    """A per-member number (float64, for the scalar arithmetic) in the parameter's dtype."""
    return value.to(like.dtype) if isinstance(value, torch.Tensor) else value


def _zeros(param: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(param, memory_format=torch.preserve_format)


def _counter(param: torch.Tensor, h: dict) -> torch.Tensor:
    """The step counter: a CPU float tensor, as torch.optim keeps it; one per member of a
    stack ([K, 1, ...], on the stack's device), when the hyper-parameters are per member."""
    lr = h["lr"]
    return torch.zeros(lr.shape, device=param.device) if isinstance(lr, torch.Tensor) else torch.tensor(0.0)


def _sgd_init(param: torch.Tensor, h: dict) -> dict:
    # zeros: a momentum buffer of zeros times momentum plus the gradient is the gradient,
    # which is torch.optim's first-step buffer
    return {"momentum_buffer": _zeros(param)} if _nonzero(h["momentum"]) else {}


def _adagrad_init(param: torch.Tensor, h: dict) -> dict:
    return {"step": _counter(param, h), "sum": _zeros(param).add_(_as(h["initial_accumulator_value"], param))}


def _rmsprop_init(param: torch.Tensor, h: dict) -> dict:
    state = {"step": _counter(param, h), "square_avg": _zeros(param)}
    if _nonzero(h["momentum"]):
        state["momentum_buffer"] = _zeros(param)
    return state


def _adam_init(param: torch.Tensor, h: dict) -> dict:
    return {"step": _counter(param, h), "exp_avg": _zeros(param), "exp_avg_sq": _zeros(param)}


def _adadelta_init(param: torch.Tensor, h: dict) -> dict:
    return {"step": _counter(param, h), "square_avg": _zeros(param), "acc_delta": _zeros(param)}


class UpdateRule(NamedTuple):
    """An update rule: `init(param, h) -> state` before the first step, `update(param, grad,
    state, h)` in place at every step (param a tensor or a [K, ...] stack; h numbers or [K]
    tensors)."""

    init: Callable[[torch.Tensor, dict], dict]
    update: Callable[[torch.Tensor, torch.Tensor, dict, dict], None]


sgd = UpdateRule(_sgd_init, _sgd_update)
adagrad = UpdateRule(_adagrad_init, _adagrad_update)
rmsprop = UpdateRule(_rmsprop_init, _rmsprop_update)
adam = UpdateRule(_adam_init, _adam_update)
adadelta = UpdateRule(_adadelta_init, _adadelta_update)


class FunctionalOptimizer:
    """One of the rules above behind the part of torch.optim's interface optlab uses.

    `group` holds the hyper-parameters under torch.optim's names (the lr is set there, as in
    a torch.optim param group); `rule_args` turns them into the rule's."""

    def __init__(self, params, rule: UpdateRule, group: dict, rule_args: Callable[[dict], dict]):
        """`params`: tensors, or param groups as torch.optim takes them (dicts with `params`
        and the settings that differ from `group`'s)."""
        self.rule, self.rule_args = rule, rule_args
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = [{**group, **g, "params": list(g["params"])} for g in groups]
        self.state: dict[torch.Tensor, dict] = {}
        self.pre_hooks: OrderedDict[int, Callable] = OrderedDict()  # RemovableHandle keeps a weak reference
        self.post_hooks: OrderedDict[int, Callable] = OrderedDict()

    def register_step_pre_hook(self, hook: Callable):
        """hook(optimizer, args, kwargs) before each step, as torch.optim calls it."""
        return _add_hook(self.pre_hooks, hook)

    def register_step_post_hook(self, hook: Callable):
        return _add_hook(self.post_hooks, hook)

    def step(self) -> None:
        for hook in tuple(self.pre_hooks.values()):
            hook(self, (), {})
        self._update()
        for hook in tuple(self.post_hooks.values()):
            hook(self, (), {})

    @torch.no_grad()
    def _update(self) -> None:
        for group in self.param_groups:
            h = self.rule_args(group)
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state.get(param)
                if state is None:
                    state = self.state[param] = self.rule.init(param, h)
                self.rule.update(param, param.grad, state, h)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self._params():
            param.grad = None

    def state_dict(self) -> dict:
        """torch.optim's format: per-parameter state by index (numbered across the groups in
        order), and each group's settings."""
        params, groups, start = self._params(), [], 0
        for group in self.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            groups.append({**settings, "params": list(range(start, start + len(group["params"])))})
            start += len(group["params"])
        state = {i: dict(self.state[p]) for i, p in enumerate(params) if p in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        """From this class's state_dict or torch.optim's (a checkpoint of either resumes)."""
        groups = saved["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"optimizer state has {sum(len(g['params']) for g in groups)} parameters "
                             f"in {len(groups)} group(s); this model has {len(self._params())} "
                             f"in {len(self.param_groups)}")
        for group, saved_group in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved_group.items() if k != "params" and k in group})
        params = self._params()
        self.state = {params[int(i)]: _on(params[int(i)], s) for i, s in saved["state"].items()}


def _add_hook(hooks: dict, hook: Callable) -> RemovableHandle:
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


def _on(param: torch.Tensor, state: dict) -> dict:
    """A saved state moved to its parameter's device (the step counter stays on the CPU)."""
    return {k: v.to(param.device) if isinstance(v, torch.Tensor) and k != "step" else v for k, v in state.items()}
