"""A PBT sweep's files, and how a stopped one resumes with nothing redone or lost.

In the sweep folder: pbt.json (the state: the PBT seed, each member's trial, run folder and
initial values, every event made, the last epoch whose events are committed), pbt.csv
(every event, one row each), best_schedule.yaml (the best member's schedule, written at the
end). In each member's run folder: lineage.csv (its own events) and pbt-round.pt (a hard
link to its checkpoint at the last committed round), beside the ordinary files.

A round at the end of epoch e (or the end of the last epoch, with no events) is committed
in this order: (1) every member's checkpoint written with the round's changes in it, (2)
the events appended to pbt.csv and lineage.csv, (3) pbt.json rewritten atomically: the
commit, (4) each member's pbt-round.pt linked to its new checkpoint. A resume first cuts
pbt.csv and lineage.csv back to the committed epoch, then looks at the members'
checkpoints: when all stand at one position with no round due between the commit and it,
they continue from there (a signal stops every member at one step); otherwise (a kill
between checkpoint writes, or after a round's checkpoints but before its commit) every
member goes back to its pbt-round.pt (or starts over, before the first round), and the
epochs since are trained again, to the same numbers on a CPU.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from optlab import faults
from optlab.errors import DataError
from optlab.runs.files import CsvAppender, read_json, truncate_after_epoch, write_atomic, write_json
from optlab.sweep.pbt import Event, is_round
from optlab.sweep.spec import SweepSpec

STATE_FILE, EVENTS_FILE, LINEAGE_FILE = "pbt.json", "pbt.csv", "lineage.csv"
ROUND_FILE, BEST_SCHEDULE_FILE = "pbt-round.pt", "best_schedule.yaml"


@dataclass
class PbtState:
    """pbt.json: what a PBT sweep has decided so far."""

    seed: int
    epochs: int
    members: list[dict]  # {member, trial, run_dir (relative to the sweep folder, or None), initial}
    events: list[dict] = field(default_factory=list)  # Event's fields, in the order made
    committed: int = -1  # the last epoch whose round is committed (-1: none yet)

    def values(self, member: int, epoch: int | None = None) -> dict:
        """The member's values during `epoch` (None: from the last committed epoch on)."""
        values = dict(self.members[member]["initial"])
        for event in self.events:
            if event["member"] == member and (epoch is None or event["epoch"] < epoch):
                values = dict(event["after"])
        return values

    def events_of(self, member: int) -> list[dict]:
        return [e for e in self.events if e["member"] == member]


def read_state(sweep_dir: Path) -> PbtState | None:
    path = Path(sweep_dir) / STATE_FILE
    if not path.exists():
        return None
    raw = read_json(path)
    try:
        return PbtState(int(raw["seed"]), int(raw["epochs"]), list(raw["members"]), list(raw["events"]),
                        int(raw["committed"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: damaged ({type(exc).__name__}: {exc})") from None


def write_state(sweep_dir: Path, state: PbtState) -> None:
    write_json(Path(sweep_dir) / STATE_FILE, asdict(state))


def event_columns(keys: list[str]) -> list[str]:
    return ["epoch", "member", "donor", "reason", "member_score", "donor_score",
            *(f"{key}_{when}" for key in keys for when in ("before", "after", "how"))]


def event_row(event: dict, run_dir: str | None = None) -> dict:
    row = {k: event[k] for k in ("epoch", "member", "donor", "reason", "member_score", "donor_score")}
    for key in event["after"]:
        row.update({f"{key}_before": event["before"].get(key), f"{key}_after": event["after"][key],
                    f"{key}_how": event["how"][key]})
    return {**row, "run_dir": run_dir} if run_dir is not None else row


def commit_round(sweep_dir: Path, state: PbtState, epoch: int, events: list[Event], keys: list[str]) -> None:
    """Steps (2) to (4) of a round, once every member's checkpoint holds its changes."""
    sweep_dir, new = Path(sweep_dir), [asdict(e) for e in events]
    runs = {m["member"]: m["run_dir"] for m in state.members}
    if new:
        CsvAppender(sweep_dir / EVENTS_FILE, [*event_columns(keys), "run_dir"]).append_many(
            [event_row(e, runs[e["member"]]) for e in new])
        for event in new:
            CsvAppender(sweep_dir / runs[event["member"]] / LINEAGE_FILE, event_columns(keys)).append(event_row(event))
    faults.hit("pbt.commit")
    state.events += new
    state.committed = epoch
    write_state(sweep_dir, state)
    for run in runs.values():
        link_round(sweep_dir / run)


def link_round(run_dir: Path) -> None:
    """pbt-round.pt: the checkpoint as it is now, kept when checkpoint.pt is replaced."""
    _link(Path(run_dir) / "checkpoint.pt", Path(run_dir) / ROUND_FILE)


def _link(source: Path, target: Path) -> None:
    """target becomes a hard link to source, at once (a temp link renamed over it)."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    os.link(source, temp)
    os.replace(temp, target)


def cut_logs(sweep_dir: Path, state: PbtState) -> None:
    """pbt.csv and the lineage files back to the committed epoch (rows of a round whose
    commit never came go)."""
    truncate_after_epoch(Path(sweep_dir) / EVENTS_FILE, state.committed)
    for member in state.members:
        if member["run_dir"]:
            truncate_after_epoch(Path(sweep_dir) / member["run_dir"] / LINEAGE_FILE, state.committed)


def position(checkpoint: dict | None) -> tuple[int, int]:
    """(last finished epoch, batches done in the next) of a checkpoint; (-1, 0) without one."""
    if checkpoint is None:
        return -1, 0
    mid = checkpoint.get("mid_epoch")
    return int(checkpoint["epoch"]), int(mid["batches_done"]) if mid else 0


def can_continue(state: PbtState, checkpoints: list[dict | None], rows: list[list[dict]], spec: SweepSpec) -> bool:
    """Whether the members may continue from their checkpoints: all at one position, with no
    round (nor a diverged member's revival) due between the commit and it."""
    positions = {position(c) for c in checkpoints}
    if len(positions) != 1:
        return False
    done = positions.pop()[0]
    if done < state.committed:
        return False
    for epoch in range(state.committed + 1, done + 1):
        scores = [r[epoch][spec.metric] for r in rows if epoch < len(r)]
        if is_round(epoch, spec.pbt, state.epochs) or (epoch + 1 < state.epochs and not all(map(math.isfinite, scores))):
            return False
    return True


def roll_back(run_dir: Path) -> None:
    """The member goes back to its checkpoint at the last committed round (none: it starts over)."""
    run_dir = Path(run_dir)
    if (run_dir / ROUND_FILE).exists():
        _link(run_dir / ROUND_FILE, run_dir / "checkpoint.pt")
    else:
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)


def lineage(state: PbtState, member: int) -> tuple[list[int], list[dict]]:
    """The member's lineage followed back through its donors: per epoch, the member whose run
    its weights were trained in then; and the events passed through (oldest first)."""
    owner, owners, passed = member, [], []
    for epoch in range(state.epochs - 1, -1, -1):
        owners.append(owner)
        taken = [e for e in state.events_of(owner) if e["epoch"] == epoch - 1]
        if taken:
            passed.append(taken[-1])
            owner = taken[-1]["donor"]
    return owners[::-1], passed[::-1]


def best_schedule(state: PbtState, member: int) -> tuple[dict[str, list], list[dict]]:
    """The member's whole schedule, following its lineage back through its donors: each key's
    [epoch, value] pairs where its value changes, and the events passed through (oldest first)."""
    owners, passed = lineage(state, member)
    schedule: dict[str, list] = {}
    for epoch, owner in enumerate(owners):
        values = state.values(owner, epoch)
        for key, value in values.items():
            pairs = schedule.setdefault(key, [])
            if not pairs or pairs[-1][1] != value:
                pairs.append([epoch, value])
    return schedule, passed


def write_best_schedule(sweep_dir: Path, state: PbtState, spec: SweepSpec, member: int, value: float) -> dict:
    """best_schedule.yaml: what `optlab train --replay` trains from scratch."""
    import yaml

    from optlab.sweep.spec import metric_label

    schedule, passed = best_schedule(state, member)
    record = state.members[member]
    data = {"study": spec.study, "metric": metric_label(spec.metric, spec.at), "value": value, "member": member,
            "trial": record["trial"], "run_dir": record["run_dir"], "base": list(spec.base), "epochs": state.epochs,
            "schedule": schedule,
            "lineage": [{"epoch": e["epoch"], "member": e["member"], "donor": e["donor"]} for e in passed]}
    header = (f"# The schedule of PBT sweep {spec.study}'s best member ({member}), followed back through its donors:\n"
              "# each searched key's [epoch, value] from that epoch on (epochs from 0, as in metrics.csv).\n"
              f"# optlab train --replay {BEST_SCHEDULE_FILE} trains one model from scratch under it.\n")
    write_atomic(Path(sweep_dir) / BEST_SCHEDULE_FILE, header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return data
