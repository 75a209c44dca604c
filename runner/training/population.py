"""Population training: K runs that share a structure trained at once, as one vectorized model.

Members share everything that shapes the computation (model, width and depth, activation,
norm, dropout, data, batch plan, augmentation, epochs, optimizer and schedule kinds,
precision) and differ in continuous hyper-parameters (the optimizer's and the schedule's
numbers, L1/L2, clipping, label smoothing, the init's scale keys) and in the seed.

Each member is built exactly as its solo run would be (build(): its seed, its split, its
init, its batch-order and augmentation generators), then the parameters and buffers are
stacked to [K, ...] and one vmapped forward and backward serves every member: batch norm
keeps per-member statistics and running buffers, dropout draws per member
(randomness="different": a member with dropout is statistically, not bitwise, its solo
run). The update rules are optlab.optim.functional's, with per-member hyper-parameters as
[K] tensors. Clipping, penalties, metrics and the divergence check are per member; a member
that diverges is masked (its lr is 0, its loss leaves the sum) and the others go on
unchanged. Every member writes an ordinary run folder (summary.json says
`execution: population`), whose checkpoint `optlab train --resume` continues solo.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from optlab import faults
from optlab.config.compose import as_plain, flatten, is_bookkeeping
from optlab.data.curriculum import is_paced
from optlab.errors import Interrupted, OptlabError, Pruned
from optlab.optim import schedules
from optlab.optim.optimizers import OPTIMIZERS
from optlab.runs.status import Status
from optlab.training.build import Parts, build
from optlab.training.checkpoint import RunFolderWriter
from optlab.training.loop import Outcome, Run, RunResult, _Diverged
from optlab.training.signals import stop_on_signals
from optlab.training.state import cpu_snapshot

PER_MEMBER_PREFIXES = ("optimizer.", "schedule.", "regularize.l1", "regularize.l2", "regularize.clip_norm",
                       "regularize.clip_value", "regularize.label_smoothing", "init.std", "init.r", "init.gain",
                       "init.value", "init.bias.value", "init.tol_var", "init.t_max", "trainer.seed")
STRUCTURAL_NAMES = ("optimizer.name", "schedule.name")
MemberHook = Callable[[int, int, dict], None]  # (member index, epoch, row); may raise Pruned
AUTO_SIZE = 16  # --population auto on a CPU: past it, a CPU gains little per member


def is_per_member(key: str) -> bool:
    return key not in STRUCTURAL_NAMES and key.startswith(PER_MEMBER_PREFIXES)


def structure(cfg) -> str:
    """What members of one population must share: the config without the keys members may
    differ in (and without bookkeeping keys), as text to group by."""
    flat = {k: v for k, v in flatten(as_plain(cfg)) if not is_per_member(k) and not is_bookkeeping(k)}
    return json.dumps(flat, sort_keys=True, default=str)


def why_solo(cfg) -> str | None:
    """Why a config cannot train in a population (None: it can)."""
    c = as_plain(cfg)
    t = c["trainer"]
    reasons = [(t["compile"], "trainer.compile=true compiles one model"),
               (t["diagnostics"], "trainer.diagnostics=true hooks one model's layers"),
               (c["init"].get("from"), f"init.from={c['init'].get('from')} loads one run's weights"),
               (t.get("freeze"), f"trainer.freeze={t.get('freeze')}: populations update every parameter"),
               (t.get("train_only"), f"trainer.train_only={t.get('train_only')}: populations update every parameter"),
               (c["optimizer"].get("lr_scale"), "optimizer.lr_scale: populations keep one lr per member"),
               (c["norm"].get("noise"), "norm.noise=true draws the noise from one run's generator"),
               (t.get("tensorboard", False), "trainer.tensorboard=true writes one run's event files"),
               (is_paced(c["data"]), f"data.order={c['data'].get('order')} admits one run's examples by its own difficulty"),
               (str(t["precision"]) != "32", f"trainer.precision={t['precision']} (populations train in 32 bits)"),
               (str(t["data_on_device"]) == "false", "trainer.data_on_device=false streams one run's batches"),
               *((c[g].get("_target_"), f"{g}._target_={c[g].get('_target_')}: your own code trains one run")
                 for g in ("model", "init", "optimizer", "schedule")),
               (OPTIMIZERS.get(c["optimizer"]["name"]).rule is None,
                f"optimizer={c['optimizer']['name']} has no functional form")]
    return next((why for applies, why in reasons if applies), None)


@dataclass
class Member:
    """One member: its solo parts (data, init, generators, hyper-parameters) and its run."""

    cfg: dict
    parts: Parts
    run: "MemberRun"
    hook: MemberHook | None = None
    outcome: Outcome | None = None  # set once the member's run has ended
    reported: bool = False  # its end was handed to the caller (end_population_epoch's return)

    @property
    def active(self) -> bool:
        return self.outcome is None


class MemberRun(Run):
    """A member's run folder: written like a solo run's, its live weights are a slice of the
    population's stacked tensors."""

    def __init__(self, *args, population: "Population", index: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.population, self.index = population, index

    def current_weights(self) -> dict:
        return cpu_snapshot({name: self.population.stacked(name)[self.index] for name in self.model_state})

    def snapshot(self) -> dict:
        p, pop = self.parts, self.population
        model_state = {name: pop.stacked(name)[self.index] for name in self.model_state}
        return self.state.snapshot(model_state, pop.member_optimizer_state(self.index), p.scaler, p.generators,
                                   self.host_rng, p.cfg)


class _MemberOptimizerState:
    """What RunState.snapshot reads off an optimizer: its state_dict."""

    def __init__(self, state: dict):
        self.state = state

    def state_dict(self) -> dict:
        return self.state


@dataclass
class Hyper:
    """Per-member numbers as [K] tensors (views shaped for each parameter's rank, made once)."""

    values: dict[str, torch.Tensor]
    flags: dict = field(default_factory=dict)
    views: dict[int, dict] = field(default_factory=dict)

    def for_rank(self, rank: int) -> dict:
        if rank not in self.views:
            shape = (-1,) + (1,) * (rank - 1)
            self.views[rank] = {**{k: v.view(shape) for k, v in self.values.items()}, **self.flags}
        return self.views[rank]


class Population:
    """K members trained as one model; members may be replaced one by one at epoch ends."""

    def __init__(self, cfgs: list, run_root: Path | None = None, hooks: list[MemberHook | None] | None = None,
                 console=None):
        self.datasets: dict = {}  # members with the same data options and seed share one dataset
        self.run_root, self.console = run_root, console
        hooks = hooks or [None] * len(cfgs)
        self.members = [self._new_member(cfg, k, hook, len(cfgs)) for k, (cfg, hook) in enumerate(zip(cfgs, hooks))]
        first = self.members[0].parts
        self.device, self.epochs = first.device, first.epochs
        self.base = copy.deepcopy(first.model).to("meta")
        self.params, self.buffers = stack_module_state([m.parts.model for m in self.members])
        self.optimizer_state = {name: self._zero_state(p) for name, p in self.params.items()}
        self.forward = vmap(self._member_forward, randomness="different")
        self._stack_data()
        self._stack_hyper()

    # ------------------------------------------------------------ members

    def _new_member(self, cfg, index: int, hook: MemberHook | None, size: int) -> Member:
        """Built as its solo run (its own progress bars off: the population shows one)."""
        cfg = copy.deepcopy(cfg)
        cfg["trainer"]["progress"] = False
        parts = build(cfg, datasets=self.datasets)
        run = MemberRun.open(parts, cfg, self.run_root, None, self.console, population=self, index=index)
        run.summary.update(execution="population", population=size)
        return Member(as_plain(cfg), parts, run, hook)

    @property
    def size(self) -> int:
        return len(self.members)

    def stacked(self, name: str) -> torch.Tensor:
        return self.params[name] if name in self.params else self.buffers[name]

    def replace(self, index: int, cfg, hook: MemberHook | None = None) -> None:
        """A new member in slot `index` (its predecessor's run has ended): its init, data
        order, optimizer state and hyper-parameters, from its first epoch."""
        member = self._new_member(cfg, index, hook, self.size)
        with torch.no_grad():
            for name, value in member.parts.model.state_dict().items():
                self.stacked(name)[index].copy_(value)
        self.members[index] = member
        for name, state in self.optimizer_state.items():
            self._reset_state(state, index)
        self._stack_data()
        self._stack_hyper()

    # ------------------------------------------------------------ stacking

    def _zero_state(self, param: torch.Tensor) -> dict:
        """Stacked optimizer state; zeros behave as torch.optim's first step (a momentum
        buffer of zeros times momentum plus the gradient is the gradient)."""
        rule = OPTIMIZERS.get(self.members[0].cfg["optimizer"]["name"]).rule.__name__
        step = torch.zeros((len(param),) + (1,) * (param.dim() - 1))
        names = {"sgd": ("momentum_buffer",), "adagrad": ("sum",), "rmsprop": ("square_avg", "momentum_buffer"),
                 "adam": ("exp_avg", "exp_avg_sq"), "adadelta": ("square_avg", "acc_delta")}[rule]
        state = {name: torch.zeros_like(param) for name in names}
        state = state if rule == "sgd" else {"step": step, **state}
        for k in range(len(param)):
            self._reset_state(state, k)
        return state

    def _reset_state(self, state: dict, index: int) -> None:
        """Slot `index`'s optimizer state as torch.optim starts it (AdaGrad: its initial G)."""
        with torch.no_grad():
            for key, value in state.items():
                start = self.members[index].cfg["optimizer"].get("initial_accumulator_value", 0.0) if key == "sum" else 0.0
                value[index].fill_(float(start))

    def _stack_data(self) -> None:
        """The members' datasets, each once ([U, N, ...]), and which one each member uses."""
        unique = list({id(m.parts.data): m.parts.data for m in self.members}.values())
        position = {id(d): u for u, d in enumerate(unique)}
        self.slot_data = torch.tensor([position[id(m.parts.data)] for m in self.members], device=self.device)
        if [id(d) for d in unique] == getattr(self, "stacked_ids", None):
            return  # the same datasets (a refill with a seed already here): nothing to copy again
        self.stacked_ids = [id(d) for d in unique]
        self.x_train, self.y_train = torch.stack([d.x_train for d in unique]), torch.stack([d.y_train for d in unique])
        self.x_val, self.y_val = torch.stack([d.x_val for d in unique]), torch.stack([d.y_val for d in unique])
        self.task = unique[0].task

    def _stack_hyper(self) -> None:
        spec = OPTIMIZERS.get(self.members[0].cfg["optimizer"]["name"])
        args = [spec.rule_args(m.parts.optimizer.param_groups[0]) for m in self.members]
        numbers = {k: v for k, v in args[0].items() if not isinstance(v, bool)}
        self.hyper = Hyper({k: torch.tensor([float(a[k]) for a in args], device=self.device, dtype=torch.float64)
                            for k in numbers},
                           {k: v for k, v in args[0].items() if isinstance(v, bool)})
        reg = [m.cfg["regularize"] for m in self.members]
        self.l1 = torch.tensor([float(r["l1"]) for r in reg], device=self.device)
        self.l2 = torch.tensor([float(r["l2"]) for r in reg], device=self.device)
        self.smoothing = torch.tensor([float(r["label_smoothing"]) for r in reg], device=self.device)
        self.clip_norm = torch.tensor([float(r.get("clip_norm") or math.inf) for r in reg], device=self.device)
        self.clip_value = torch.tensor([float(r.get("clip_value") or math.inf) for r in reg], device=self.device)

    def member_optimizer_state(self, index: int) -> _MemberOptimizerState:
        """Member `index`'s optimizer state in torch.optim's format (solo runs resume from it)."""
        solo = self.members[index].parts.optimizer.state_dict()
        state = {}
        for i, name in enumerate(self.params):
            state[i] = {key: (value[index].reshape(()).cpu().clone() if key == "step" else value[index])
                        for key, value in self.optimizer_state[name].items()}
        return _MemberOptimizerState({"state": state, "param_groups": solo["param_groups"]})

    # ------------------------------------------------------------ one step

    def _member_forward(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's mean loss ([K]): its label smoothing, its task's loss."""
        if self.task == "regression":
            target = y if y.dim() == out.dim() else y.unsqueeze(-1)
            return (out.float() - target).pow(2).mean(dim=tuple(range(1, out.dim())))
        if not bool((self.smoothing > 0).any()):
            return vmap(F.cross_entropy)(out.float(), y)
        logp = out.float().log_softmax(-1)
        classes = out.shape[-1]
        target = y if y.dim() == out.dim() else F.one_hot(y, classes).float()
        eps = self.smoothing.view(-1, 1, 1)
        target = target * (1 - eps) + eps / classes
        return -(target * logp).sum(-1).mean(-1)

    def penalties(self) -> torch.Tensor:
        """Each member's l2/2 * ||w||^2 + l1 * |w|_1 over its weights (not biases or norm gains)."""
        total = torch.zeros(self.size, device=self.device)
        if bool((self.l1 > 0).any()) or bool((self.l2 > 0).any()):
            for p in self.params.values():
                if p.dim() > 2:
                    dims = tuple(range(1, p.dim()))
                    total = total + 0.5 * self.l2 * (p * p).sum(dims) + self.l1 * p.abs().sum(dims)
        return total

    def clip(self) -> torch.Tensor:
        """Clip each member's gradients by value, then by its global norm; its pre-clip norm."""
        grads = [p.grad for p in self.params.values()]
        if bool(torch.isfinite(self.clip_value).any()):
            for g in grads:
                bound = self.clip_value.view((-1,) + (1,) * (g.dim() - 1))
                torch.clamp(g, -bound, bound, out=g)
        # summed in float64 so that a member's norm does not depend on how the reduction
        # kernels split a population of this size (a member's metrics are the same in any population)
        norms = torch.stack([g.flatten(1).double().pow(2).sum(1) for g in grads]).sum(0).sqrt().float()
        if bool(torch.isfinite(self.clip_norm).any()):
            coef = (self.clip_norm / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))
        return norms

    @torch.no_grad()
    def update(self, lrs: torch.Tensor) -> None:
        rule = OPTIMIZERS.get(self.members[0].cfg["optimizer"]["name"]).rule
        self.hyper.values["lr"] = lrs
        self.hyper.views.clear()
        for name, param in self.params.items():
            rule(param, param.grad, self.optimizer_state[name], self.hyper.for_rank(param.dim()))

    # ------------------------------------------------------------ epochs

    def batches(self, batch_size: int):
        """Each member's batch indices ([K, B]) for its epoch, drawn from its own generator."""
        n = len(self.members[0].parts.batches)
        perms = torch.stack([m.parts.batches.permutation() for m in self.members]).to(self.device)
        for start in range(0, n, batch_size):
            yield perms[:, start:start + batch_size]

    def gather(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows idx[k] of member k's dataset ([U, N, ...] -> [K, B, ...])."""
        return x[self.slot_data.unsqueeze(1), idx]

    def active_mask(self) -> torch.Tensor:
        return torch.tensor([m.active for m in self.members], device=self.device)


def train_population(cfgs: list, *, run_root: Path | None = None, hooks: list[MemberHook | None] | None = None,
                     console=None) -> list[RunResult]:
    """Train these configs (one structure) as one population to their last epoch; each
    member's RunResult (a member that diverged or was pruned ended earlier)."""
    population = Population(cfgs, run_root, hooks, console)
    with stop_on_signals() as signals, RunFolderWriter() as writer:
        try:
            while any(m.active for m in population.members):
                train_population_epoch(population, signals)
                end_population_epoch(population, writer, signals)
        except Interrupted as exc:
            for m in population.members:
                if m.active:
                    m.outcome = Outcome(Status.INTERRUPTED, str(exc), exc)
    return [member_result(m) for m in population.members]


def member_result(m: Member) -> RunResult:
    summary = m.run.write_summary(m.outcome)
    return RunResult(m.run.dir, m.outcome.status, summary)


def member_epoch(m: Member) -> int:
    """The epoch a member trains next (members that joined later are at earlier epochs)."""
    return m.run.state.epoch + 1


def step_lrs(population: Population, i: int, steps: int) -> torch.Tensor:
    """Each member's lr for this step: its schedule at its own progress, 0 for ended members."""
    values = []
    for m in population.members:
        c = m.cfg["schedule"]
        tt, unit = schedules.progress(c, member_epoch(m), i, steps)
        lr = schedules.learning_rate(c, m.parts.lr0, tt, m.parts.epochs, unit) * m.run.state.schedule.get("scale", 1.0)
        values.append(lr if m.active else 0.0)
    return torch.tensor(values, device=population.device, dtype=torch.float64)


def epoch_batch_size(p: Population) -> int:
    sizes = {m.parts.batch_size(member_epoch(m)) for m in p.members if m.active}
    if len(sizes) > 1:  # a batch plan that grows: its members stay in step, refills are refused
        raise ValueError(f"population members at epochs with different batch sizes {sorted(sizes)}")
    return sizes.pop()


def train_population_epoch(p: Population, signals) -> None:
    """One epoch of every active member, in the solo loop's order per step."""
    first = p.members[0].parts
    batch_size = epoch_batch_size(p)
    steps = first.batches.num_batches(batch_size)
    log_every = int(first.cfg["trainer"]["log_every"])
    lr_each_step = any(schedules.changes_within_epoch(m.cfg["schedule"]) for m in p.members)
    clipping = bool(torch.isfinite(p.clip_norm).any() or torch.isfinite(p.clip_value).any())
    loss_sum = torch.zeros(p.size, device=p.device)
    correct = torch.zeros(p.size, device=p.device, dtype=torch.long)
    norm_samples: list[torch.Tensor] = []
    p.epoch_start, lrs = time.perf_counter(), None
    p.base.train()
    for i, idx in enumerate(p.batches(batch_size)):
        if lr_each_step or lrs is None:  # 1) each member's lr
            lrs = step_lrs(p, i, steps)
        xb, yb = p.gather(p.x_train, idx), p.gather(p.y_train, idx)  # 2) augment
        if first.augment.active:
            xb, yb = augment_members(p, xb, yb)
        for param in p.params.values():
            param.grad = None
        out = p.forward(p.params, p.buffers, xb)  # 3) forward and loss, 4) backward
        losses = p.losses(out, yb)
        objective = torch.where(p.active_mask(), losses + p.penalties(), torch.zeros_like(losses))
        objective.sum().backward()
        if clipping or i % log_every == 0:  # 5) clip (and the sampled norms); 6) step
            norm_samples.append(p.clip())
        p.update(lrs)
        loss_sum += losses.detach() * idx.shape[1]  # 7) per-member tallies and divergence
        if p.task == "classification":
            target = yb.argmax(-1) if yb.dim() == 3 else yb
            correct += (out.argmax(-1) == target).sum(-1)
        if (i + 1) % log_every == 0:
            mask_diverged(p, losses)
        for m in p.members:
            m.run.state.step += 1 if m.active else 0
        faults.hit("population.step")
        if signals:  # 8) a signal stops every member at this step
            signals.consumed = True
            raise Interrupted(signals[0])
    p.tally = (loss_sum, correct, norm_samples, lrs, batch_size)


def augment_members(p: Population, xb: torch.Tensor, yb: torch.Tensor):
    """Each member's batch through the augmentation with its own generator (as solo)."""
    pairs = [m.parts.augment(xb[k], yb[k], m.parts.generators["augment"]) for k, m in enumerate(p.members)]
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


def mask_diverged(p: Population, losses: torch.Tensor) -> None:
    for k, value in enumerate(losses.tolist()):
        member = p.members[k]
        if member.active and not math.isfinite(value):
            member.outcome = Outcome(Status.DIVERGED, str(_Diverged(member_epoch(member), value)))


@torch.no_grad()
def evaluate_members(p: Population) -> tuple[list[float], list[float | None]]:
    """Each member's (validation loss, accuracy), in eval mode."""
    p.base.eval()
    batch_size = int(p.members[0].cfg["trainer"]["eval_batch_size"])
    n = p.x_val.shape[1]
    loss_sum = torch.zeros(p.size, device=p.device)
    correct = torch.zeros(p.size, device=p.device, dtype=torch.long)
    for start in range(0, n, batch_size):
        x, y = p.x_val[p.slot_data, start:start + batch_size], p.y_val[p.slot_data, start:start + batch_size]
        out = p.forward(p.params, p.buffers, x)
        loss_sum += p.losses(out, y) * x.shape[1]
        if p.task == "classification":
            correct += (out.argmax(-1) == y).sum(-1)
    accs = (correct.double() / n).tolist() if p.task == "classification" else [None] * p.size
    return (loss_sum / n).tolist(), accs


def end_population_epoch(p: Population, writer, signals) -> list[int]:
    """Every active member's row, checkpoint and hook, as the solo loop's end of epoch; the
    slots whose member ended here (completed its last epoch, diverged, pruned, failed)."""
    loss_sum, correct, norms, lrs, batch_size = p.tally
    n_train = p.x_train.shape[1]
    train_losses = (loss_sum / n_train).tolist()
    train_accs = (correct.double() / n_train).tolist()
    grad_norms = torch.stack(norms, dim=1).mean(1).tolist() if norms else [float("nan")] * p.size  # [K, samples]: rows
    val_losses, val_accs = evaluate_members(p)
    elapsed = time.perf_counter() - p.epoch_start
    ended = []
    for k, m in enumerate(p.members):
        if m.outcome is None and math.isfinite(train_losses[k]):
            row = {"epoch": member_epoch(m), "step": m.run.state.step, "lr": float(lrs[k]), "batch_size": batch_size,
                   "train_loss": train_losses[k], "train_acc": train_accs[k] if p.task == "classification" else None,
                   "val_loss": val_losses[k], "val_acc": val_accs[k], "grad_norm": grad_norms[k],
                   "epoch_time_s": elapsed, "samples_per_s": n_train / max(elapsed, 1e-9)}
            end_member_epoch(m, k, row, writer, signals)
        elif m.outcome is None:
            m.outcome = Outcome(Status.DIVERGED, str(_Diverged(member_epoch(m), train_losses[k])))
        if m.outcome is not None and not m.reported:
            m.reported = True
            ended.append(k)
    return ended


def end_member_epoch(m: Member, k: int, row: dict, writer, signals) -> None:
    """The solo end of epoch for one member; a member past its last epoch completes."""
    hook = (lambda e, r: m.hook(k, e, r)) if m.hook else None
    try:
        m.run.end_epoch(row["epoch"], row, writer, hook, signals)
    except Pruned as exc:
        m.outcome = Outcome(Status.PRUNED, str(exc) or "pruned by the sweep's pruner")
    except _Diverged as exc:
        m.outcome = Outcome(Status.DIVERGED, str(exc))
        return
    except OptlabError as exc:
        if isinstance(exc, Interrupted):
            raise
        m.outcome = Outcome(Status.FAILED, str(exc), exc)
        return
    if m.outcome is None and member_epoch(m) >= m.parts.epochs:
        m.outcome = Outcome()
    elif m.outcome is None and m.run.watch.early.stop:  # as the solo loop: before its next epoch
        m.outcome = Outcome(Status.COMPLETED, "early_stopped")
    if m.outcome is not None:  # completed or pruned at an epoch's end: the state to resume from
        m.run.checkpoint.write(writer, (m.run.state.epoch, m.run.state.step), m.run.snapshot)
