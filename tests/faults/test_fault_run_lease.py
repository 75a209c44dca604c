"""One writer per run folder (runs/lease.py): of several processes resuming one run at once,
the first to claim it trains (held here at `run.claimed`, right after its claim) and every
other is refused with one line and exit 2, none crashes, and each epoch has one row; a dead
or silent writer's lease is taken over, a live one's never; a writer that lost its lease
writes nothing more; no temp file of a live process is removed."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from faultkit import SMALL_RUN, child_env, metric_rows, one_error_line, only_run, optlab, optlab_command, summary

from optlab.errors import ConfigError
from optlab.runs import lease
from optlab.runs.files import RunTakenOver, remove_stale_temp_files, write_atomic


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    yield folder
    lease.release(folder)


def plant(run_dir, generation: int, **record) -> None:
    (run_dir / f"{lease.PREFIX}{generation}").write_text(json.dumps({"beat": 0, **record}))


class FakeClock:
    """time.monotonic and time.sleep for a test that must not wait for real."""

    def __init__(self, on_sleep=None):
        self.now, self.on_sleep = 0.0, on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.now)


def test_a_live_writer_on_this_host_keeps_its_run(run_dir):
    plant(run_dir, 0, pid=os.getppid(), host=socket.gethostname())
    with pytest.raises(ConfigError, match=f"still being trained by process {os.getppid()}"):
        lease.claim(run_dir)


def test_a_dead_writers_lease_is_taken_over_by_the_next_generation(run_dir):
    plant(run_dir, 3, pid=dead_pid(), host=socket.gethostname())
    held = lease.claim(run_dir)
    assert held.generation == 4 and sorted(p.name for p in run_dir.iterdir()) == [".writer.4"]
    assert lease.claim(run_dir) is held  # a process asking again holds it already


def test_another_hosts_silent_lease_is_taken_over_after_the_grace_without_waiting(run_dir):
    plant(run_dir, 0, pid=1, host="another-node")
    clock = FakeClock()
    held = lease.claim(run_dir, clock=clock, sleep=clock.sleep)
    assert held.generation == 1 and clock.now >= lease.GRACE_S


def test_another_hosts_beating_lease_is_refused(run_dir):
    plant(run_dir, 0, pid=1, host="another-node")
    clock = FakeClock(on_sleep=lambda now: plant(run_dir, 0, pid=1, host="another-node", beat=int(now)))
    with pytest.raises(ConfigError, match="still being trained by process 1 on another-node"):
        lease.claim(run_dir, clock=clock, sleep=clock.sleep)
    assert clock.now < lease.GRACE_S


def test_a_writer_whose_lease_was_taken_over_writes_nothing_more(run_dir):
    held = lease.claim(run_dir)
    assert held.beat()
    plant(run_dir, held.generation + 1, pid=1, host="another-node")  # it was paused; another host took over
    assert not held.beat()
    with pytest.raises(RunTakenOver, match="took .* over while this one was stopped"):
        write_atomic(run_dir / "metrics.csv", "epoch\n")
    assert not (run_dir / "metrics.csv").exists()


def test_a_live_processs_temp_file_is_never_removed(tmp_path):
    (tmp_path / f".checkpoint.pt.{os.getpid()}.tmp").write_bytes(b"being written")
    (tmp_path / f".checkpoint.pt.{dead_pid()}.tmp").write_bytes(b"left by a killed writer")
    removed = remove_stale_temp_files(tmp_path)
    assert [p.name for p in removed] != [] and all(str(os.getpid()) not in p.name for p in removed)
    assert (tmp_path / f".checkpoint.pt.{os.getpid()}.tmp").exists()


@pytest.mark.slow
def test_of_five_simultaneous_resumes_one_trains_and_four_are_refused(tmp_path):
    killed = tmp_path / "killed"
    optlab("train", *SMALL_RUN, "trainer.epochs=4", f"trainer.out_dir={killed}", cwd=tmp_path,
           fault="train.epoch_end@2=kill")
    run = only_run(killed)
    gate = tmp_path / "gate"
    env = child_env("run.claimed=wait", OPTLAB_FAULT_GATE=str(gate))
    starts = [subprocess.Popen([*optlab_command(), "train", "--resume", str(run)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(5)]
    try:
        deadline = time.monotonic() + 100  # the one holding the lease waits at the gate; the others end
        while sum(p.poll() is not None for p in starts) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = [p for p in starts if p.poll() is not None]
        refused = [(p, *p.communicate()) for p in ended]
        gate.touch()
        finished = [(p, *p.communicate(timeout=120)) for p in starts if p not in ended]
    finally:
        gate.touch()
        for p in starts:
            p.kill() if p.poll() is None else None
    assert len(refused) == 4 and len(finished) == 1, [p.returncode for p in starts]
    for p, _, err in refused:
        assert p.returncode == 2
        one_error_line(err, "still being trained by process", "two writers")
    assert finished[0][0].returncode == 0, finished[0][2]
    alone = tmp_path / "alone"
    optlab("train", *SMALL_RUN, "trainer.epochs=4", f"trainer.out_dir={alone}", cwd=tmp_path)
    assert metric_rows(run) == metric_rows(only_run(alone)) and summary(run)["status"] == "completed"
    assert not [p for p in run.iterdir() if p.name.startswith(lease.PREFIX)]  # given back at the end


def test_a_folder_copied_while_its_run_trains_can_be_resumed(tmp_path, run_dir):
    lease.claim(run_dir)
    copy = shutil.copytree(run_dir, tmp_path / "copy")  # its lease names this live process, and another folder
    try:
        assert lease.claim(copy).generation == 1
    finally:
        lease.release(copy)
