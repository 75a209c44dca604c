"""Curriculum learning (Bengio et al. 2009): the order examples are admitted to training in.

Every data option takes these keys. `data.order=random` (the default) trains on the whole
training split every epoch. `curriculum` ranks the training examples by difficulty (each
one's loss under a reference model, training/difficulty.py), easiest first;
`anti_curriculum` hardest first. Ties keep the split's order (a stable sort).

Pacing: epoch e (counted from 0) trains on the first n_e ranked examples, where

    f(e) = start + (1 - start) * min(e, E) / E       (start = data.pacing.start, E = data.pacing.epochs)
    n_e  = ceil(N * f(e))                             (N: the training split's size)

computed exactly in rationals from the values as written (start 0.2 is 1/5), so epoch 0 has
ceil(N * start) examples and every epoch from E on has all N. The pool only grows: each
epoch's pool holds the one before. Inside the pool the batches follow a permutation of the
pool drawn from the run's data-order generator, as random order draws one of the whole split.
An epoch under pacing is one pass over that epoch's pool: it takes ceil(n_e / batch size)
steps, schedules count it as one epoch, and its train_loss and train_acc are means over the
pool.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from optlab.registry import Check, Key, at_least

ORDERS = ("random", "curriculum", "anti_curriculum")

ORDER_KEYS = (
    Key("order", "random", choices=ORDERS),
    Key("difficulty_from", None, kind=str),  # a run folder whose model scores difficulty; null: the fresh init
    Key("pacing.start", 0.2, Check(lambda v: 0 < v <= 1, "in (0, 1]")),
    Key("pacing.epochs", 5, at_least(1)),
)


def admitted_fraction(start: float, pace_epochs: int, epoch: int) -> Fraction:
    """f(e) above, as an exact fraction."""
    s = Fraction(repr(float(start)))
    return s + (1 - s) * Fraction(min(epoch, pace_epochs), pace_epochs)


def admitted_count(n: int, start: float, pace_epochs: int, epoch: int) -> int:
    """n_e above: how many of the N ranked examples epoch `epoch` trains on."""
    return max(1, math.ceil(n * admitted_fraction(start, pace_epochs, epoch)))


def ranking(difficulty: torch.Tensor, order: str) -> torch.Tensor:
    """Example indices in the order they are admitted: easiest first for curriculum, hardest
    first for anti_curriculum; equal difficulties in index order."""
    return torch.sort(difficulty, stable=True, descending=order == "anti_curriculum").indices


@dataclass(frozen=True)
class Pacing:
    """Which training examples each epoch admits."""

    scores: torch.Tensor  # each training example's difficulty
    ranked: torch.Tensor  # example indices, the first admitted first
    start: float
    epochs: int

    def size(self, epoch: int) -> int:
        return admitted_count(len(self.ranked), self.start, self.epochs, epoch)

    def pool(self, epoch: int) -> torch.Tensor:
        return self.ranked[: self.size(epoch)]


def is_paced(data_cfg: dict) -> bool:
    return data_cfg.get("order", "random") != "random"  # a run folder may predate the key


def pacing_for(data_cfg: dict, difficulty: torch.Tensor) -> Pacing:
    pacing = data_cfg["pacing"]
    return Pacing(difficulty, ranking(difficulty, data_cfg["order"]), float(pacing["start"]), int(pacing["epochs"]))
