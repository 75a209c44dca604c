"""Which runs train together: the one place that decides solo or population.

Members of a population share everything that shapes the computation (model, width and
depth, activation, norm, dropout, data, batch plan, augmentation, epochs, the kinds of
optimizer and schedule, precision): their `structure`. They differ in the per-member keys
(the optimizer's and the schedule's numbers, L1/L2, clipping, label smoothing, the init's
scale keys) and the seed. A run that cannot share one trains alone, and `why_solo` says why.
A resumed run joins others stopped at the same batch of their epoch (its checkpoint says
which), so a population stopped by a signal resumes as one.
"""
from __future__ import annotations

import json
import sys

from optlab.config.compose import as_plain, flatten, is_bookkeeping
from optlab.data.curriculum import is_paced
from optlab.optim.optimizers import OPTIMIZERS

PER_MEMBER_PREFIXES = ("optimizer.", "schedule.", "regularize.l1", "regularize.l2", "regularize.clip_norm",
                       "regularize.clip_value", "regularize.label_smoothing", "init.std", "init.r", "init.gain",
                       "init.value", "init.bias.value", "init.tol_var", "init.t_max", "trainer.seed")
STRUCTURAL_NAMES = ("optimizer.name", "schedule.name")
AUTO = "auto"  # --population auto: K chosen by measuring the stacked step (auto_size)
AUTO_SIZES = (4, 8, 16, 32, 64)  # the population sizes auto measures (at most the runs planned)
_MEASURED: dict[tuple, int] = {}  # structure, device, runs planned -> the K auto chose in this process


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
    reasons = [(t["diagnostics"], "trainer.diagnostics=true hooks one model's layers"),
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
               (t.get("replay"), "trainer.replay changes one run's hyper-parameters between its epochs"),
               (OPTIMIZERS.get(c["optimizer"]["name"]).rule is None,
                f"optimizer={c['optimizer']['name']} has no functional form")]
    return next((why for applies, why in reasons if applies), None)


def why_alone_under_auto(cfg) -> str | None:
    """Why `--population auto` trains a config alone although a population could take it:
    a member's dropout masks are drawn for the whole stack, so its numbers depend on which
    runs share its population, and auto's K on a timing. Alone, the same command gives the
    same numbers on every machine; `--population K` stacks it (statistically its solo run)."""
    dropout = as_plain(cfg)["model"].get("dropout") or 0.0
    if float(dropout) > 0:
        return (f"model.dropout={dropout}: its masks would depend on which runs share its population "
                "(--population K stacks it)")
    return None


def resume_position(checkpoint: dict | None) -> int:
    """The batch of its epoch a resumed run continues from (0: an epoch's start)."""
    mid = (checkpoint or {}).get("mid_epoch")
    return int(mid["batches_done"]) if mid else 0


def refillable(parts) -> bool:
    """Whether a population's slots may take new members at epoch ends: only when the batch
    size is the same every epoch (members then start their first epoch beside later ones)."""
    return len({parts.batch_size(e) for e in range(parts.epochs)}) <= 1


class Pending:
    """Runs waiting to train, handed out as groups in the order given: a run that trains
    alone, or up to `size` runs of one key (structure, and the batch a resumed run
    continues from). `more(places)` (a sweep asking for trials) is asked for runs whenever
    none fits; a run whose request was stopped while it waited is dropped (`on_dropped`)."""

    def __init__(self, size, more=None, on_dropped=None, who: str = "optlab", planned: int = 0,
                 together: bool = False):
        self.size = size if size == AUTO else max(1, int(size))  # auto: set by the first run that can share
        self.auto = size == AUTO
        self.more, self.on_dropped, self.who, self.planned = more, on_dropped, who, planned
        self.together, self.said = together, False  # every run in one group, whatever its key (a lockstep group: PBT)
        self.waiting: list = []
        self.seen: list = []  # every request, in the order it came

    def add(self, requests) -> None:
        for request in requests:
            if self.size == AUTO and self.why_alone(request.cfg) is None:
                self.size = auto_size(request.cfg, max(self.planned, len(self.waiting) + len(requests)))
            request.key = self.key_of(request)
            self.waiting.append(request)
            self.seen.append(request)

    @property
    def places(self) -> int:
        """How many runs a population takes (1 while auto has not measured yet)."""
        return 1 if self.size == AUTO else self.size

    def key_of(self, request) -> tuple[str, int] | None:
        """None: it trains alone (said on stderr when populations were asked for)."""
        from optlab.runs.folder import checkpoint_to_resume

        if self.size == 1 and not self.together:
            return None
        reason = self.why_alone(request.cfg)
        if reason and self.together:  # said once for the group
            if not self.said:
                print(f"{self.who}: the runs train in turns, not as one population: {reason}", file=sys.stderr)
            self.said = True
            return None
        if reason:
            print(f"{self.who}: {as_plain(request.cfg)['trainer']['name']} trains alone: {reason}", file=sys.stderr)
            return None
        if request.resume_dir is not None:
            request.checkpoint = checkpoint_to_resume(request.resume_dir)
        return structure(request.cfg), resume_position(request.checkpoint) if request.resume_dir else 0

    def why_alone(self, cfg) -> str | None:
        return why_solo(cfg) or (why_alone_under_auto(cfg) if self.auto and not self.together else None)

    def next_group(self) -> list | None:
        if self.together:
            group, self.waiting = [r for r in self.waiting if not r.stop], []
            return group or None
        first = self.take(None)
        if first is None:
            return None
        group = [first]
        while first.key is not None and len(group) < self.places:
            request = self.take(first.key, places=self.places - len(group))
            if request is None:
                break
            group.append(request)
        return group

    def take(self, key, places: int | None = None):
        """The next waiting run of this key (any run: key None), asking `more` for up to
        `places` runs while none waits; None when there is none."""
        while True:
            for i, request in enumerate(self.waiting):
                if request.stop:
                    self.waiting.pop(i)
                    if self.on_dropped is not None:
                        self.on_dropped(request)
                    break
                if key is None or request.key == key:
                    return self.waiting.pop(i)
            else:
                new = self.more(places or self.places) if self.more is not None else []
                if not new:
                    return None
                self.add(new)

    def count(self, key) -> int:
        """Runs of this key waiting now."""
        return sum(request.key == key and not request.stop for request in self.waiting)


def population_setting(value, where: str = "--population"):
    """K (an integer >= 1), or "auto"; None when not given. One line naming `where` otherwise."""
    from optlab.errors import ConfigError

    if value is None or value == AUTO:
        return value
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{where} {value}: give a number of runs >= 1, or auto")
    return int(text)


def auto_size(cfg, planned: int) -> int:
    """--population auto: the K among AUTO_SIZES (up to the runs planned) whose stacked step
    takes the least time per member, measured on this config's structure on this machine
    (a larger stack is faster per member only until memory traffic, not Python and kernel
    launches, bounds it). Said on stderr with the measurements; measured once per structure,
    device and plan in a process."""
    from optlab.training.stacked import member_step_seconds

    plain = as_plain(cfg)
    shape = structure(plain)
    key = (shape, str(plain["trainer"]["device"]), planned)
    if key not in _MEASURED:
        sizes = [k for k in AUTO_SIZES if k <= max(planned, AUTO_SIZES[0])]
        seconds = {k: member_step_seconds(plain, shape, k) for k in sizes}
        best = min(sizes, key=lambda k: (seconds[k], k))
        _MEASURED[key] = best
        shown = ", ".join(f"K={k} {seconds[k] * 1e3:.2f} ms" for k in sizes)
        print(f"optlab: --population auto: K={best} (a member's step: {shown})", file=sys.stderr, flush=True)
    return _MEASURED[key]
