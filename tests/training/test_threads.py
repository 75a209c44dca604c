"""trainer.threads: auto is the cores but one shared by optlab's processes; an explicit
count never exceeds the process's share; the count in effect is in summary.json."""
from __future__ import annotations

import json

import pytest
import torch

from optlab.training import threads


@pytest.mark.parametrize("setting, cores, processes, expected", [
    ("auto", 2, 1, 1), ("auto", 1, 1, 1), ("auto", 16, 1, 15), ("auto", 16, 4, 3), ("auto", 2, 2, 1),
    (1, 2, 1, 1), (2, 2, 1, 2), (8, 2, 1, 2), (8, 16, 4, 4), (3, 2, 2, 1),
])
def test_auto_and_explicit_counts(setting, cores, processes, expected):
    assert threads.resolve(setting, cores, processes) == expected


def test_a_sweep_worker_takes_its_share_and_omp_num_threads_caps_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "_processes", 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.usable_cores() <= 3
    threads.share_cores(4)
    assert threads.resolve("auto", cores=16) == 3 and threads.resolve(16, cores=16) == 4


def test_the_count_in_effect_is_recorded_in_summary_json(tmp_path, compose_cfg):
    from optlab.training.api import train

    before = torch.get_num_threads()
    try:
        for setting in (1, "auto"):
            cfg = compose_cfg("trainer.epochs=1", f"trainer.threads={setting}", f"trainer.out_dir={tmp_path}")
            result = train(cfg)
            summary = json.loads((result.run_dir / "summary.json").read_text())
            assert summary["threads"] == threads.resolve(setting) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
