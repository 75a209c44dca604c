"""Curriculum pacing against its formula: which examples each epoch admits, in which order."""
import math

import pytest
import torch

from optlab.config.compose import compose
from optlab.data._base import DATASETS
from optlab.data.curriculum import (
    ORDER_KEYS,
    Pacing,
    admitted_count,
    admitted_fraction,
    pacing_for,
    ranking,
)
from optlab.data.loaders import DeviceBatches, StreamingBatches
from optlab.errors import ConfigError


@pytest.mark.parametrize("n, start, pace_epochs, counts", [
    # f(e) = start + (1 - start) * min(e, E) / E; n_e = ceil(N f(e)), by hand:
    (10, 0.25, 3, [3, 5, 8, 10, 10]),       # 2.5 -> 3, 5, 7.5 -> 8, 10, then all
    (100, 0.2, 4, [20, 40, 60, 80, 100]),   # 0.2 * 100 is 20 exactly (in floats 20.000000000000004)
    (1437, 0.2, 2, [288, 863, 1437]),       # 287.4 -> 288, 862.2 -> 863
    (7, 1.0, 5, [7, 7, 7]),                 # start 1: everything from the first epoch
    (3, 0.01, 1, [1, 3]),                   # 0.03 -> 1
])
def test_admitted_counts_follow_the_linear_pacing(n, start, pace_epochs, counts):
    assert [admitted_count(n, start, pace_epochs, e) for e in range(len(counts))] == counts


def test_the_fraction_is_exact_for_the_value_as_written():
    assert admitted_fraction(0.2, 4, 1) == pytest.approx(0.4)
    assert str(admitted_fraction(0.2, 4, 1)) == "2/5"
    assert admitted_fraction(0.3, 3, 3) == 1 and admitted_fraction(0.3, 3, 9) == 1


def test_ranking_is_easiest_first_or_hardest_first_with_ties_in_index_order():
    scores = torch.tensor([3.0, 1.0, 2.0, 1.0, 5.0])
    assert ranking(scores, "curriculum").tolist() == [1, 3, 2, 0, 4]
    assert ranking(scores, "anti_curriculum").tolist() == [4, 0, 2, 1, 3]


def paced(order: str, start: float = 0.25, epochs: int = 3) -> dict:
    return {"order": order, "pacing": {"start": start, "epochs": epochs}}


def test_each_epoch_trains_once_on_exactly_its_pool_in_a_seeded_permutation():
    n, batch = 10, 3
    scores = torch.tensor([9.0, 0.0, 8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0])  # easiest: 1, 3, 5, 7, 9, 8, ...
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    loader = DeviceBatches(x, torch.arange(n), torch.Generator().manual_seed(7))
    loader.pacing = pacing_for(paced("curriculum"), scores)
    expected_gen = torch.Generator().manual_seed(7)
    ranked = [1, 3, 5, 7, 9, 8, 6, 4, 2, 0]
    for epoch, count in enumerate([3, 5, 8, 10, 10]):
        assert loader.size(epoch) == count and loader.num_batches(batch, epoch) == math.ceil(count / batch)
        seen = torch.cat([yb for _, yb in loader.epoch(batch, epoch=epoch)])
        pool = torch.tensor(ranked[:count])
        assert seen.tolist() == pool[torch.randperm(count, generator=expected_gen)].tolist()
        assert sorted(seen.tolist()) == sorted(ranked[:count])


def test_anti_curriculum_admits_the_hardest_first():
    scores = torch.tensor([0.5, 4.0, 1.0, 3.0])
    loader = DeviceBatches(torch.zeros(4, 1), torch.arange(4), torch.Generator().manual_seed(0))
    loader.pacing = pacing_for(paced("anti_curriculum", start=0.5, epochs=1), scores)
    assert sorted(torch.cat([y for _, y in loader.epoch(4, epoch=0)]).tolist()) == [1, 3]
    assert sorted(torch.cat([y for _, y in loader.epoch(4, epoch=1)]).tolist()) == [0, 1, 2, 3]


def test_a_resumed_epoch_skips_the_batches_done_in_the_same_order():
    loader = DeviceBatches(torch.zeros(10, 1), torch.arange(10), torch.Generator().manual_seed(3))
    loader.pacing = Pacing(torch.zeros(10), torch.arange(10).flip(0), 0.5, 2)
    state = loader.generator.get_state()
    whole = [y.tolist() for _, y in loader.epoch(2, epoch=1)]
    loader.generator.set_state(state)
    assert [y.tolist() for _, y in loader.epoch(2, skip=2, epoch=1)] == whole[2:]


def test_random_order_is_the_plain_permutation_and_streaming_matches_on_device():
    x, y = torch.randn(11, 2), torch.arange(11)
    plain = DeviceBatches(x, y, torch.Generator().manual_seed(5))
    assert plain.pacing is None and plain.size(4) == 11
    order = torch.cat([yb for _, yb in plain.epoch(4, epoch=3)])
    assert order.tolist() == torch.randperm(11, generator=torch.Generator().manual_seed(5)).tolist()
    pacing = pacing_for(paced("curriculum"), torch.rand(11, generator=torch.Generator().manual_seed(1)))
    on_device = DeviceBatches(x, y, torch.Generator().manual_seed(2))
    streamed = StreamingBatches(x, y, torch.Generator().manual_seed(2), torch.device("cpu"))
    on_device.pacing = streamed.pacing = pacing
    for epoch in range(3):
        assert [b.tolist() for _, b in on_device.epoch(4, epoch=epoch)] == \
               [b.tolist() for _, b in streamed.epoch(4, epoch=epoch)]


def test_every_data_option_takes_the_order_keys():
    names = [k.name for k in ORDER_KEYS]
    for spec in DATASETS:
        first = spec.key_names().index("order")
        assert spec.key_names()[first:first + len(names)] == names


@pytest.mark.parametrize("override, message", [
    ("data.order=easy", "data.order=easy: choose from: random, curriculum, anti_curriculum"),
    ("data.pacing.start=0", "data.pacing.start=0: must be in (0, 1]"),
    ("data.pacing.epochs=0", "data.pacing.epochs=0: must be >= 1"),
])
def test_bad_order_settings_exit_with_one_line(override, message):
    with pytest.raises(ConfigError) as info:
        compose([override])
    assert str(info.value) == message
