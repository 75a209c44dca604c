"""Population Based Training (Jaderberg et al. 2017): the rule of exploit and explore.

A PBT sweep (`scheduler: pbt`, `--population K`) trains K members in lockstep. At the end of
every `interval`-th epoch (not after the last) the members are ranked by the sweep's metric
at that epoch. Each member in the bottom `quantile` exploits: it takes the weights,
optimizer state and normalization buffers of a member drawn uniformly from the top
`quantile`, and that member's hyper-parameters; then it explores them: each searched value is
drawn anew from the space with probability `resample`, else multiplied by a factor drawn
uniformly from `perturb` and clipped to the space's bounds (integers rounded, stepped values
put on their step); a categorical value is drawn anew from its choices. A member whose metric
is NaN or infinite (it diverged) exploits at the end of that very epoch, whether or not a
round is due, so no member is left dead; it ranks below every other.

Ray Tune's PopulationBasedTraining is the reference (its defaults: quantile 0.25, resample
0.25, perturbation factors 1.2 and 0.8; the quantile's size ceil(K x quantile), at most
K / 2). Where optlab's rule differs from Ray's: the members run in lockstep and a round
ranks all of them at one epoch (Ray's `synch=True`; its default is asynchronous); the
interval counts epochs, not seconds; perturbed values are clipped to the space's bounds
(Ray lets them leave it); a categorical value is always drawn anew (Ray moves it to a
neighbouring choice unless it resamples); a diverged member exploits at once.

Each round's draws come from a generator seeded by the sweep's PBT seed and the epoch, so
a round decided again (after a resume) decides the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optlab.errors import ConfigError
from optlab.sweep.spec import Param, PbtSettings, SweepSpec


@dataclass(frozen=True)
class Event:
    """One exploit and its explore: `member` took `donor`'s state at the end of `epoch`."""

    epoch: int
    member: int
    donor: int
    member_score: float  # the sweep's metric at `epoch`: the member's, and its donor's
    donor_score: float
    reason: str          # "bottom quantile" or "diverged"
    before: dict = field(default_factory=dict)  # the member's values during `epoch`
    after: dict = field(default_factory=dict)   # its values from epoch + 1 on
    how: dict = field(default_factory=dict)     # per key: "x1.2" (perturbed) or "resampled"


def check_pbt_spec(spec: SweepSpec) -> None:
    """What a PBT sweep needs, each refused in one line naming the way out."""
    from optlab.training.hyper import why_fixed

    if spec.scheduler != "pbt":
        return
    if (spec.population or 1) < 2:
        raise ConfigError("scheduler: pbt trains a population: give --population K (K >= 2 members; auto: 16)")
    if spec.trials != spec.population:
        raise ConfigError(f"trials={spec.trials}: a PBT sweep's budget is its population (one trial per member, "
                          f"{spec.population} here) x trainer.epochs; leave trials out")
    for setting, value, fine in (("seeds", spec.seeds, 1), ("pruner", spec.pruner, "none"), ("timeout", spec.timeout, None)):
        if value != fine:
            raise ConfigError(f"{setting}={value}: not with scheduler: pbt (its members replace each other's "
                              f"weights); leave {setting} out")
    if (spec.jobs or 1) > 1:
        raise ConfigError(f"--jobs {spec.jobs}: a PBT population trains in one process; leave --jobs out")
    for param in spec.space:
        reason = why_fixed(param.key)
        if reason:
            raise ConfigError(f"space '{param.name}': PBT changes its values while the members train, and {reason}")
        if param.when:
            raise ConfigError(f"space '{param.name}': a conditional parameter (when:) is not searched by PBT")
        if param.kind == "categorical" and not all(c is None or _number(c) for c in param.choices):
            raise ConfigError(f"space '{param.name}': PBT's categorical choices must be numbers (or null)")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_round(epoch: int, settings: PbtSettings, epochs: int) -> bool:
    """Whether a round of exploit and explore ends `epoch` (counted from 0)."""
    return (epoch + 1) % settings.interval == 0 and epoch + 1 < epochs


def quantile_size(members: int, quantile: float) -> int:
    """Members in the bottom (and the top) quantile: ceil(K x quantile), at most K / 2 (Ray's)."""
    return min(math.ceil(members * quantile), members // 2)


def ranked(scores: dict[int, float], direction: str) -> list[int]:
    """Members best first by score; NaN and infinite ones last; ties by member number."""
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(scores, key=lambda k: (not math.isfinite(scores[k]), sign * scores[k] if math.isfinite(scores[k]) else 0.0, k))


def plan_round(epoch: int, scores: dict[int, float], values: dict[int, dict], spec: SweepSpec, seed: int,
               due: bool) -> list[Event]:
    """The events at the end of `epoch`: the bottom quantile's when a round is `due`, and every
    diverged member's. `values`: each member's values during the epoch."""
    order = ranked(scores, spec.direction)
    finite = [k for k in order if math.isfinite(scores[k])]
    size = quantile_size(len(order), spec.pbt.quantile)
    bottom = order[len(order) - size:] if due and size else []
    takers = bottom + [k for k in order if not math.isfinite(scores[k]) and k not in bottom]
    top = finite[:max(size, 1)]
    if not takers or not finite:
        return []
    rng = np.random.default_rng([seed, epoch])
    events = []
    for member in sorted(takers):
        donor = top[int(rng.integers(len(top)))]
        after, how = explore(values[donor], spec.space, spec.pbt, rng)
        reason = "diverged" if not math.isfinite(scores[member]) else "bottom quantile"
        events.append(Event(epoch, member, donor, scores[member], scores[donor], reason, dict(values[member]), after, how))
    return events


def explore(values: dict, space: tuple[Param, ...], settings: PbtSettings, rng) -> tuple[dict, dict]:
    """The donor's values explored: (new values, how each was changed)."""
    after, how = {}, {}
    for param in space:
        if param.kind == "categorical" or rng.random() < settings.resample:
            after[param.key], how[param.key] = sample(param, rng), "resampled"
        else:
            factor = settings.perturb[int(rng.integers(len(settings.perturb)))]
            after[param.key], how[param.key] = clip(param, values[param.key] * factor), f"x{factor:g}"
    return after, how


def clip(param: Param, value: float) -> float | int:
    """A perturbed value within [low, high]: on the step grid for a stepped one, whole for an int."""
    value = min(max(value, param.low), param.high)
    if param.step is not None:
        value = param.low + round((value - param.low) / param.step) * param.step
        value = min(value, param.high)
    return int(round(value)) if param.kind == "int" else float(value)


def sample(param: Param, rng) -> Any:
    """A value drawn from the space's distribution of this parameter (as the random sampler
    draws: uniform, log-uniform, uniform on the step grid, a uniform choice)."""
    if param.kind == "categorical":
        return param.choices[int(rng.integers(len(param.choices)))]
    if param.step is not None:
        return clip(param, param.low + int(rng.integers(int((param.high - param.low) // param.step) + 1)) * param.step)
    if param.log:
        return clip(param, math.exp(rng.uniform(math.log(param.low), math.log(param.high))))
    if param.kind == "int":
        return int(rng.integers(int(param.low), int(param.high) + 1))
    return float(rng.uniform(param.low, param.high))
