"""The stacked engine: K runs of one structure trained at once, as one vectorized model.

Each member is built exactly as its solo run would be (build(): its seed, its split, its
init, its batch-order and augmentation generators); then its parameters and buffers are
stacked to [K, ...] and one step serves every member: torch.func.grad of the summed
per-member objective of a vmap(functional_call) forward, per-member clipping, and each
parameter's update rule (optlab.optim.functional's, the solo runs' own) with per-member
hyper-parameters as [K] tensors. Batch norm keeps per-member statistics and running
buffers; dropout draws per member (randomness="different": a member with dropout is
statistically, not bitwise, its solo run). A member whose run ended is masked (its lr is 0,
its loss leaves the sum) and the others go on unchanged; its slot may take a new member.

The step is one function of tensors, so torch.compile can compile it whole: one compiled
step per structure and population size in a process (kept in KERNELS), never recompiled per
member, epoch or population; inductor's on-disk cache spares a later process most of the
compile time.
"""
from __future__ import annotations

import copy
import getpass
import hashlib
import math
import os
import re
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.func import functional_call, stack_module_state, vmap

from optlab.optim.optimizers import OPTIMIZERS
from optlab.optim.regularize import clip_gradients, is_penalized, penalty_of, task_loss
from optlab.training.build import Parts
from optlab.training.engine import Engine, count_correct, evaluate_batches
from optlab.training.state import EpochTally


@dataclass
class Kernel:
    """One structure's vectorized forward and step (compiled or not), shared by its populations."""

    base: torch.nn.Module  # the architecture on the meta device: functional_call supplies the tensors
    forward: Callable  # (params, buffers, [K, B, ...] inputs) -> [K, B, ...] outputs: the validation pass's
    step: Callable


KERNELS: dict[tuple, Kernel] = {}
# trainer.compile=auto: compile once the epochs left, at the measured eager speed, would take
# longer than compiling saves. The figures are measured on the 2-core reference machine (README).
COMPILE_S = 40.0  # compiling a population's step with inductor's cache empty
WARM_COMPILE_S = 8.0  # the same step again, in a later process: inductor's on-disk cache has it
COMPILED_SPEEDUP = 1.3  # an epoch of the compiled step against the same eager step (K=16 and 64)
COMPILED_RECORD = "optlab-compiled-steps.txt"  # in inductor's cache folder: the steps compiled on this machine


def compile_setting(parts: Parts) -> str:
    """trainer.compile: "auto", "true" or "false"."""
    return str(parts.cfg["trainer"]["compile"]).lower()


def worth_compiling(epoch_seconds: float, epochs_left: int, compile_s: float = COMPILE_S) -> bool:
    """trainer.compile=auto's rule: the time compiling saves over the epochs left exceeds its cost."""
    return epochs_left * epoch_seconds * (1 - 1 / COMPILED_SPEEDUP) > compile_s


def inductor_cache() -> Path:
    """Inductor's cache folder (TORCHINDUCTOR_CACHE_DIR, else its per-user folder in the temp
    folder), found as torch finds it without importing torch._inductor (a second and more)."""
    configured = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if configured:
        return Path(configured)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid_{os.getuid()}"
    return Path(tempfile.gettempdir()) / ("torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))


def step_digest(key: str, size: int, signature: str = "") -> str:
    """A population's compiled step is one per structure and population size (its shapes),
    and per `signature`: which hyper-parameters are per member (tensors) or shared (numbers)."""
    return hashlib.sha256(f"{size}|{signature}|{key}".encode()).hexdigest()[:32]


def compiled_before(key: str, size: int, signature: str = "") -> bool:
    try:
        return step_digest(key, size, signature) in (inductor_cache() / COMPILED_RECORD).read_text().split()
    except OSError:
        return False


def note_compiled(key: str, size: int, signature: str = "") -> None:
    """Remember that inductor's cache holds this step (trainer.compile=auto counts it warm)."""
    try:
        with open(inductor_cache() / COMPILED_RECORD, "a") as record:
            record.write(step_digest(key, size, signature) + "\n")
    except OSError:  # a cache folder we cannot write to only means a later auto counts the compile cold
        pass


def kernel_for(key: str, parts: Parts, size: int, compiled: bool) -> Kernel:
    """The kernel of this structure (`key`), made on first use in this process; compiled, one
    per population size too (its shapes): static shapes, a graph for a full batch and one for
    the epoch's shorter last, in a function of its own (dynamo limits the graphs per function)."""
    index = (key, size, True) if compiled else (key, None, False)
    if index not in KERNELS:
        base = copy.deepcopy(parts.model).to("meta")
        forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), randomness="different")
        spec = OPTIMIZERS.get(parts.cfg["optimizer"]["name"])
        penalized = [name for name, p in parts.model.named_parameters() if is_penalized(p)]
        step = make_step(forward, spec.rule, parts.data.task, penalized, functional=compiled)
        if compiled:
            digest = step_digest(key, size)[:12]
            step = _compiled(step, f"population_step_{digest}")
            forward = _compiled(lambda p, b, x, vmapped=forward: vmapped(p, b, x), f"population_forward_{digest}")
        KERNELS[index] = Kernel(base, forward, step)
    return KERNELS[index]


def _compiled(function: Callable, name: str) -> Callable:
    """torch.compile of a copy of `function` with a code object of its own, so that its graphs
    (static shapes) count against dynamo's recompile limit alone."""
    code = function.__code__.replace(co_name=name)
    return torch.compile(types.FunctionType(code, function.__globals__, name, function.__defaults__,
                                            function.__closure__), dynamic=False)


def make_step(forward: Callable, rule, task: str, penalized: list[str], functional: bool) -> Callable:
    """The population's step as one function of tensors (what torch.compile compiles).
    `functional`: the gradients by torch.func.grad, which torch.compile traces whole; else by
    torch.autograd.grad of the parameters (leaf tensors), which spares an eager population
    the import of torch._dynamo that torch.func.grad makes (a second and more)."""

    def step(params: dict, buffers: dict, state: dict, hyper: dict, flags: dict, reg: dict,
             active: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, sample_norm: bool):
        def objective(weights: dict, buffers: dict):  # buffers an input: batch norm updates them in place
            out = forward(weights, buffers, xb)
            losses = task_loss(out, yb, task, reg["smoothing"], members=True)
            penalties = penalty_of([weights[name] for name in penalized], reg["l1"], reg["l2"], members=True)
            return torch.where(active, losses + penalties, 0.0).sum(), (losses.detach(), out.detach())

        if functional:
            grads, (losses, out) = torch.func.grad(objective, has_aux=True)(params, buffers)
        else:
            total, (losses, out) = objective(params, buffers)
            grads = dict(zip(params, torch.autograd.grad(total, list(params.values()))))
        norms = None
        if sample_norm:  # always when clipping
            norms = clip_gradients(list(grads.values()), reg["clip_value"], reg["clip_norm"], members=True)
        views: dict[int, dict] = {}
        with torch.no_grad():
            for name, param in params.items():
                if param.dim() not in views:
                    shape = (-1,) + (1,) * (param.dim() - 1)
                    views[param.dim()] = {**{k: v.view(shape) if isinstance(v, torch.Tensor) else v
                                             for k, v in hyper.items()}, **flags}
                rule.update(param, grads[name], state[name], views[param.dim()])
        return losses, (count_correct(out, yb) if task == "classification" else None), norms

    return step


class StackedEngine(Engine):
    """K members of one structure as stacked tensors, stepped by one kernel."""

    def __init__(self, members: list[Parts], key: str, compiled: bool = False):
        first = members[0]
        self.parts, self.size, self.device = list(members), len(members), first.device
        self.task, self.key, self.compiled, self.decided, self.noted = first.data.task, key, compiled, compiled, False
        self.kernel = kernel_for(key, first, self.size, compiled)
        self.rule = OPTIMIZERS.get(first.cfg["optimizer"]["name"]).rule
        self.names = list(first.model.state_dict(keep_vars=True))
        params, self.buffers = stack_module_state([p.model for p in members])
        self.params = {name: p.detach().requires_grad_() for name, p in params.items()}  # leaves, updated in place
        self.plain = {name: p.detach() for name, p in self.params.items()}  # the same memory: what torch.compile takes
        self.active = torch.ones(self.size, dtype=torch.bool, device=self.device)
        self.datasets: list = []
        self._stack_hyper()
        self.state = {name: self.rule.init(p, self._views(p)) for name, p in self.params.items()}
        for k in range(self.size):
            self._load_optimizer_state(k)
        self._stack_data()

    def consider_compiling(self, epoch_seconds: float, epochs_left: int) -> None:
        """trainer.compile=auto, after the first eager epoch: compile from the next epoch on
        when the planned work amortizes it (worth_compiling); decided once."""
        if not self.decided:
            self.decided = True
            cost = WARM_COMPILE_S if compiled_before(self.key, self.size, self.signature()) else COMPILE_S
            if worth_compiling(epoch_seconds, epochs_left, cost):
                print(f"optlab: trainer.compile=auto: compiling the population's step ({epochs_left} epochs of "
                      f"{epoch_seconds:.2f} s left; compiling takes about {cost:.0f} s)", file=sys.stderr, flush=True)
                self.kernel, self.compiled = kernel_for(self.key, self.parts[0], self.size, True), True

    # ------------------------------------------------------------ members

    def stacked(self, name: str) -> torch.Tensor:
        return self.params[name] if name in self.params else self.buffers[name]

    def end_member(self, k: int) -> None:
        self.active[k] = False

    def retuned(self, k: int) -> None:
        self._stack_hyper()

    @torch.no_grad()
    def copy_optimizer_state(self, source: int, target: int) -> None:
        for per_param in self.state.values():
            for value in per_param.values():
                if isinstance(value, torch.Tensor):
                    value[target].copy_(value[source])

    def replace(self, k: int, parts: Parts) -> None:
        """A new member in slot k (its predecessor's run has ended): its weights, optimizer
        state (restored, or fresh), data and hyper-parameters."""
        self.parts[k] = parts
        with torch.no_grad():
            for name, value in parts.model.state_dict().items():
                self.stacked(name)[k].copy_(value)
        self.active[k] = True
        self._stack_hyper()
        self._load_optimizer_state(k)
        self._stack_data()

    def _load_optimizer_state(self, k: int) -> None:
        """Slot k's optimizer state: its rule's init with its own numbers, then whatever its
        optimizer holds (a resumed run's, restored from its checkpoint)."""
        parts = self.parts[k]
        own = parts.optimizer.state
        h = self.rule_args(parts)
        with torch.no_grad():
            for (name, stacked_param), param in zip(self.params.items(), parts.model.parameters()):
                start = {**self.rule.init(param.detach(), h), **own.get(param, {})}
                for key, value in self.state[name].items():
                    if start.get(key) is not None:
                        value[k].copy_(start[key])

    def rule_args(self, parts: Parts) -> dict:
        spec = OPTIMIZERS.get(parts.cfg["optimizer"]["name"])
        return spec.rule_args(parts.optimizer.param_groups[0])

    def _stack_hyper(self) -> None:
        """Per-member numbers as [K] tensors: the optimizer's (float64, for the scalar
        arithmetic), and the regularizers' (None, or 0, where no member has one)."""
        args = [self.rule_args(p) for p in self.parts]
        self.hyper = {k: self._per_member_or_shared([float(a[k]) for a in args], k == "lr")
                      for k, v in args[0].items() if not isinstance(v, bool)}
        self.flags = {k: v for k, v in args[0].items() if isinstance(v, bool)}
        reg = [p.cfg["regularize"] for p in self.parts]
        self.reg = {key: self._per_member([float(r.get(key) or 0.0) for r in reg], absent=0.0)
                    for key in ("l1", "l2", "label_smoothing")}
        self.reg["smoothing"] = self.reg.pop("label_smoothing")
        for key in ("clip_value", "clip_norm"):
            self.reg[key] = self._per_member([float(r.get(key) or math.inf) for r in reg], absent=None)

    def signature(self) -> str:
        """Which of the step's numbers are per member (a tensor) and which shared: what the
        compiled graph depends on besides the shapes."""
        numbers = {**self.hyper, **self.reg, **self.flags}
        return ",".join(f"{k}:{type(v).__name__}" for k, v in sorted(numbers.items()))

    def _per_member_or_shared(self, values: list[float], always: bool = False):
        """A number every member shares (what its solo run computes with: a weight decay of
        0 costs nothing), else [K] values in float64 (the lr always: it changes every step)."""
        if not always and len(set(values)) == 1:
            return values[0]
        return torch.tensor(values, device=self.device, dtype=torch.float64)

    def _per_member(self, values: list[float], absent):
        """[K] values, or `absent` where no member has the term (inf and 0 mean none)."""
        if all(v == 0.0 or v == math.inf for v in values):
            return absent
        return torch.tensor(values, device=self.device)

    def _views(self, param: torch.Tensor) -> dict:
        shape = (-1,) + (1,) * (param.dim() - 1)
        return {**{k: v.view(shape) if isinstance(v, torch.Tensor) else v for k, v in self.hyper.items()},
                **self.flags}

    def _stack_data(self) -> None:
        """The members' datasets, each once ([U, N, ...]), and which one each member uses."""
        unique = list({id(p.data): p.data for p in self.parts}.values())
        position = {id(d): u for u, d in enumerate(unique)}
        self.slot_data = torch.tensor([position[id(p.data)] for p in self.parts], device=self.device)
        if [id(d) for d in unique] == [id(d) for d in self.datasets]:
            return  # the same datasets (a refill with a seed already here): nothing to copy again
        self.datasets = unique
        self.x_train, self.y_train = torch.stack([d.x_train for d in unique]), torch.stack([d.y_train for d in unique])
        self.x_val, self.y_val = torch.stack([d.x_val for d in unique]), torch.stack([d.y_val for d in unique])

    # ------------------------------------------------------------ the epoch

    def begin_epoch(self, epoch: int, steps: int, tallies: list[EpochTally]) -> None:
        self.kernel.base.train()
        self.loss_sum = torch.stack([t.loss_sum for t in tallies]).float()
        self.correct = torch.stack([t.correct for t in tallies])
        self.norms = [torch.stack(column) for column in zip(*(t.grad_norms for t in tallies))]

    def batches(self, batch_size: int, skip: int, epoch: int):
        """Each member's batches ([K, B, ...]), in the order its own generator draws: rows
        of the stacked datasets ([U * N, ...]) gathered by one index_select each."""
        perms = torch.stack([p.batches.order(epoch) for p in self.parts]).to(self.device)
        rows = perms + self.slot_data.unsqueeze(1) * self.x_train.shape[1]  # [K, N]: rows of x_train.flatten(0, 1)
        x, y = self.x_train.flatten(0, 1), self.y_train.flatten(0, 1)
        for start in range(skip * batch_size, perms.shape[1], batch_size):
            idx = rows[:, start:start + batch_size]
            shape = idx.shape
            yield x.index_select(0, idx.flatten()).unflatten(0, shape), y.index_select(0, idx.flatten()).unflatten(0, shape)

    def set_lrs(self, lrs: list[float]) -> None:
        self.hyper["lr"] = torch.tensor(lrs, device=self.device, dtype=torch.float64)

    def step(self, i: int, batch, sample_norm: bool) -> None:
        xb, yb = batch
        if self.parts[0].augment.active:  # each member's batch, with its own generator (as solo)
            pairs = [p.augment(xb[k], yb[k], p.generators["augment"]) for k, p in enumerate(self.parts)]
            xb, yb = torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
        # the norms are recorded when sampled and whenever clipping needs them (as solo); the
        # compiled step takes them every step (one graph, and they cost next to nothing there)
        record = sample_norm or self.reg["clip_value"] is not None or self.reg["clip_norm"] is not None
        losses, correct, norms = self.kernel.step(self.plain if self.compiled else self.params, self.buffers,
                                                  self.state, self.hyper, self.flags, self.reg, self.active, xb, yb,
                                                  record or self.compiled)
        if self.compiled and not self.noted:
            note_compiled(self.key, self.size, self.signature())
            self.noted = True
        self.loss_sum += losses * xb.shape[1]
        if correct is not None:
            self.correct += correct
        if record:
            self.norms.append(norms)
        self.losses = losses

    def nonfinite_losses(self) -> dict[int, float]:
        return {k: value for k, value in enumerate(self.losses.tolist())
                if bool(self.active[k]) and not math.isfinite(value)}

    def tallies(self) -> list[EpochTally]:
        return [EpochTally(self.loss_sum[k], self.correct[k], [n[k] for n in self.norms]) for k in range(self.size)]

    @torch.no_grad()
    def evaluate(self, split: str) -> list[tuple[float, float | None]]:
        self.kernel.base.eval()
        first = self.parts[0]
        size, n = int(first.cfg["trainer"]["eval_batch_size"]), self.x_val.shape[1]
        batches = ((self.x_val[self.slot_data, s:s + size], self.y_val[self.slot_data, s:s + size])
                   for s in range(0, n, size))
        forward = lambda x: self.kernel.forward(self.plain, self.buffers, x)  # noqa: E731
        loss = lambda out, y: task_loss(out, y, self.task, self.reg["smoothing"], members=True)  # noqa: E731
        losses, accs = evaluate_batches(forward, batches, loss, self.task, n, first.autocast, batch_dim=1)
        return list(zip(losses.tolist(), accs.tolist() if accs is not None else [None] * self.size))

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        return {name: self.stacked(name)[k] for name in self.names}

    def optimizer(self, k: int):
        return _MemberOptimizer(self, k)


class _MemberOptimizer:
    """What a checkpoint reads off a member's optimizer: its state_dict, in torch.optim's
    format (a solo run resumes from it)."""

    def __init__(self, engine: StackedEngine, k: int):
        self.engine, self.k = engine, k

    def state_dict(self) -> dict:
        engine, k = self.engine, self.k
        solo = engine.parts[k].optimizer.state_dict()
        state = {i: {key: (value[k].reshape(()).cpu().clone() if key == "step" else value[k])
                     for key, value in engine.state[name].items()}
                 for i, name in enumerate(engine.params)}
        return {"state": state, "param_groups": solo["param_groups"]}


def member_step_seconds(cfg: dict, key: str, size: int, steps: int = 3) -> float:
    """Seconds per member of one eager step of `size` members of this config (its structure
    `key`; the median of `steps` steps after one to warm up): what --population auto compares
    across sizes."""
    import statistics
    import time

    from optlab.training.build import build

    member = copy.deepcopy(cfg)
    member["trainer"]["progress"] = False
    datasets: dict = {}  # one dataset for all: the members' seeds do not change the step's cost
    parts = [build(member, datasets=datasets) for _ in range(size)]
    engine = StackedEngine(parts, key)
    batch_size = parts[0].batch_size(0)
    engine.begin_epoch(0, parts[0].batches.num_batches(batch_size), [EpochTally.zero(engine.device)] * size)
    engine.set_lrs([float(member["optimizer"]["lr"])] * size)
    times = []
    for i, batch in zip(range(steps + 1), engine.batches(batch_size, 0, 0)):
        started = time.perf_counter()
        engine.step(i, batch, sample_norm=False)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:] or times) / size
