"""A PBT sweep's state and files (runner/sweep/pbt_state.py): the best member's schedule
followed back through its donors, when stopped members may continue, the round's commit
and the way back to it."""
from __future__ import annotations

import csv
import math

from optlab.sweep.pbt import Event
from optlab.sweep.pbt_state import (
    ROUND_FILE,
    PbtState,
    best_schedule,
    can_continue,
    commit_round,
    cut_logs,
    read_state,
    roll_back,
)
from optlab.sweep.spec import spec_from_dict

SPEC = spec_from_dict({"study": "unit", "scheduler": "pbt", "population": 3, "pbt": {"interval": 2},
                       "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}}})


def state(events=(), committed=-1, epochs=6, run_dirs=(None, None, None)) -> PbtState:
    members = [{"member": k, "trial": k, "run_dir": run_dirs[k], "initial": {"optimizer.lr": lr}, "overrides": []}
               for k, lr in enumerate((0.1, 0.2, 0.3))]
    return PbtState(seed=1, epochs=epochs, members=members, events=list(events), committed=committed)


def event(epoch, member, donor, lr) -> dict:
    return {"epoch": epoch, "member": member, "donor": donor, "member_score": 0.1, "donor_score": 0.9,
            "reason": "bottom quantile", "before": {}, "after": {"optimizer.lr": lr}, "how": {"optimizer.lr": "x1.2"}}


def test_the_best_schedule_follows_the_lineage_back_through_each_donor():
    """Member 0 took member 1 after epoch 3, which had taken member 2 after epoch 1."""
    s = state([event(1, 1, 2, 0.36), event(3, 0, 1, 0.29)])
    schedule, passed = best_schedule(s, 0)
    assert schedule == {"optimizer.lr": [[0, 0.3], [2, 0.36], [4, 0.29]]}
    assert [(e["epoch"], e["member"], e["donor"]) for e in passed] == [(1, 1, 2), (3, 0, 1)]
    assert best_schedule(s, 2) == ({"optimizer.lr": [[0, 0.3]]}, [])
    assert s.values(0, epoch=3) == {"optimizer.lr": 0.1} and s.values(0) == {"optimizer.lr": 0.29}


def ckpt(epoch, batches=0):
    return {"epoch": epoch, "mid_epoch": {"batches_done": batches} if batches else None}


def rows(n, bad=None):
    return [{"val_acc": math.nan if e == bad else 0.5} for e in range(n)]


def test_members_continue_only_from_one_position_with_no_round_due_since_the_commit():
    s = state(committed=1)
    assert can_continue(s, [ckpt(1)] * 3, [rows(2)] * 3, SPEC)  # the round's own checkpoints
    assert can_continue(s, [ckpt(2, 7)] * 3, [rows(2)] * 3, SPEC)  # a signal inside epoch 3 stopped all at step 7
    assert can_continue(s, [ckpt(2)] * 3, [rows(3)] * 3, SPEC)  # a signal at the end of epoch 2
    assert not can_continue(s, [ckpt(2), ckpt(1), ckpt(2)], [rows(3)] * 3, SPEC)  # killed between writes
    assert not can_continue(s, [ckpt(3)] * 3, [rows(4)] * 3, SPEC)  # the round after epoch 3 was never committed
    assert not can_continue(s, [ckpt(2)] * 3, [rows(3), rows(3, bad=2), rows(3)], SPEC)  # a revival due after 2
    assert can_continue(state(), [None] * 3, [[]] * 3, SPEC)  # nothing written yet: they start over


def test_a_commit_writes_the_rows_then_the_state_then_the_links_and_a_roll_back_returns_to_them(tmp_path):
    runs = [f"runs/m{k}" for k in range(3)]
    for run in runs:
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "checkpoint.pt").write_text("after epoch 1")
    s = state(run_dirs=runs)
    commit_round(tmp_path, s, 1, [Event(1, 2, 0, 0.1, 0.9, "bottom quantile", {"optimizer.lr": 0.3},
                                        {"optimizer.lr": 0.12}, {"optimizer.lr": "x1.2"})], ["optimizer.lr"])
    assert read_state(tmp_path).committed == 1 and read_state(tmp_path).values(2) == {"optimizer.lr": 0.12}
    with open(tmp_path / runs[2] / "lineage.csv", newline="") as f:
        assert [r["optimizer.lr_after"] for r in csv.DictReader(f)] == ["0.12"]
    for run in runs:
        (tmp_path / run / "checkpoint.pt").unlink()  # replaced by a later write, as an atomic write does
        (tmp_path / run / "checkpoint.pt").write_text("after epoch 2")
    assert (tmp_path / runs[0] / ROUND_FILE).read_text() == "after epoch 1"
    roll_back(tmp_path / runs[0])
    assert (tmp_path / runs[0] / "checkpoint.pt").read_text() == "after epoch 1"
    s.committed = 0  # a state from before that commit: its rows are cut
    cut_logs(tmp_path, s)
    with open(tmp_path / "pbt.csv", newline="") as f:
        assert list(csv.DictReader(f)) == []
