"""SIGINT, SIGTERM and SIGKILL delivered to a real `optlab train` at exact moments, then a
resume: the run ends with exactly the metrics of an uninterrupted one (on a CPU). The
faults happen in real processes; the resumes and the reference run in this one (through
the same `optlab` entry point), which saves a process start each."""
from __future__ import annotations

import signal
import time

import pytest
from faultkit import (
    SMALL_RUN,
    metric_rows,
    one_error_line,
    only_run,
    optlab,
    start,
    summary,
    temp_files,
)

from optlab.cli.app import main

pytestmark = pytest.mark.slow  # real processes

EVERY_EPOCH = [*SMALL_RUN, "trainer.checkpoint_every_s=0"]
STEPS_PER_EPOCH = 23  # digits: 1,438 training samples in batches of 64


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run, never stopped."""
    root = tmp_path_factory.mktemp("alone")
    assert main(["train", *EVERY_EPOCH, f"trainer.out_dir={root}"]) == 0
    return metric_rows(only_run(root))


def stop_then_resume(tmp_path, capsys, fault: str, run_args=EVERY_EPOCH) -> tuple:
    stopped = optlab("train", *run_args, "trainer.out_dir=out", cwd=tmp_path, fault=fault)
    run = only_run(tmp_path / "out")
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    return stopped, run, capsys.readouterr()


@pytest.mark.parametrize("fault, code", [
    ("train.step@5=sigterm", 143),                      # inside the first epoch, before any checkpoint
    (f"train.step@{STEPS_PER_EPOCH + 7}=sigint", 130),  # inside the second epoch
    ("train.epoch_end@2=sigterm", 143),                  # the second row written, its checkpoint not yet
])
def test_a_signal_stops_at_a_step_and_the_resume_matches(tmp_path, capsys, uninterrupted, fault, code):
    stopped, run, _ = stop_then_resume(tmp_path, capsys, fault)
    assert stopped.returncode == code, stopped.stderr
    one_error_line(stopped.stderr, "interrupted by")
    assert metric_rows(run) == uninterrupted
    assert summary(run)["status"] == "completed"


@pytest.mark.parametrize("fault", [
    f"train.step@{STEPS_PER_EPOCH + 3}=kill",  # inside the second epoch
    "table.append@2=kill",                     # the second epoch's row just written
    "checkpoint.write@2=kill",                 # halfway through writing the second checkpoint
])
def test_a_hard_kill_resumes_from_the_last_checkpoint_to_the_same_metrics(tmp_path, capsys, uninterrupted, fault):
    stopped, run, resumed = stop_then_resume(tmp_path, capsys, fault)
    assert stopped.returncode == -signal.SIGKILL
    assert metric_rows(run) == uninterrupted
    assert temp_files(run) == []  # a half-written checkpoint's temp file is removed on resume


def test_killed_before_its_first_checkpoint_the_run_starts_over_and_completes(tmp_path, capsys, uninterrupted):
    default_interval = [*SMALL_RUN]  # checkpoint_every_s=60: a short run has none until it ends
    stopped, run, resumed = stop_then_resume(tmp_path, capsys, "train.epoch_end@2=kill", default_interval)
    assert stopped.returncode == -signal.SIGKILL
    assert "starting it over from epoch 0" in resumed.err
    assert metric_rows(run) == uninterrupted and summary(run)["status"] == "completed"


def test_a_run_whose_process_is_gone_is_shown_as_interrupted_and_resumes(tmp_path, capsys):
    from optlab import report
    from optlab.runs.folder import process_alive

    optlab("train", *SMALL_RUN, "trainer.out_dir=out", cwd=tmp_path, fault="train.epoch_end=kill")
    run = only_run(tmp_path / "out")
    record = summary(run)
    assert record["status"] == "running" and {"pid", "host"} <= set(record)
    assert process_alive(record) is False
    shown = report.load([tmp_path / "out"]).runs.iloc[0]
    assert shown["status"] == "interrupted" and "process gone" in shown["reason"]
    assert main(["train", "--resume", str(run)]) == 0
    assert "interrupted (process gone)" in capsys.readouterr().err


def test_a_run_still_training_is_not_resumed_by_a_second_process(tmp_path):
    long_run = [o for o in SMALL_RUN if not o.startswith("trainer.epochs")] + ["trainer.epochs=100000"]  # killed by the test
    live = start("train", *long_run, "trainer.out_dir=out", cwd=tmp_path)
    try:
        run = wait_for_rows(tmp_path / "out", 1)
        second = optlab("train", "--resume", str(run), cwd=tmp_path)
        assert second.returncode == 2
        one_error_line(second.stderr, "still being trained by process", str(live.pid))
    finally:
        live.kill()
        live.wait()


def wait_for_rows(root, rows: int, timeout: float = 60):
    """The run folder once its metrics.csv holds `rows` rows (a deadline, not a guess)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tables = list(root.glob("runs/*/metrics.csv"))
        if tables and len(tables[0].read_text().splitlines()) > rows:
            return tables[0].parent
        time.sleep(0.05)
    raise AssertionError(f"no run under {root} reached {rows} rows in {timeout} s")


def test_sigterm_just_after_training_ends_leaves_a_completed_summary(tmp_path):
    result = optlab("train", *SMALL_RUN, "trainer.out_dir=out", cwd=tmp_path, fault="train.after_loop=sigterm")
    run = only_run(tmp_path / "out")
    assert result.returncode == 143
    one_error_line(result.stderr, "SIGTERM arrived after training ended", "complete")
    assert summary(run)["status"] == "completed" and tmp_path / result.stdout.strip().splitlines()[-1] == run


def test_ctrl_c_during_interpreter_shutdown_prints_no_traceback(tmp_path):
    result = optlab("train", *SMALL_RUN, "trainer.out_dir=out", cwd=tmp_path, fault="cli.shutdown=sigint")
    assert result.returncode in (-signal.SIGINT, 130)
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert summary(only_run(tmp_path / "out"))["status"] == "completed"


def _error_lines(stderr: str) -> list[str]:
    return [line.removeprefix("optlab: error: ") for line in stderr.splitlines() if line.startswith("optlab: error:")]


def test_ctrl_c_on_a_run_names_its_own_folder(tmp_path):
    stopped = optlab("train", *EVERY_EPOCH, "trainer.out_dir=out", cwd=tmp_path, fault="train.step@5=sigint")
    run = stopped.stdout.strip().splitlines()[-1]
    assert stopped.returncode == 130 and run.startswith("out/runs/")
    assert _error_lines(stopped.stderr) == [f"interrupted by SIGINT; resume with `optlab train --resume {run}`"]


def test_ctrl_c_on_a_one_worker_sweep_says_only_rerun_the_sweep(tmp_path):
    from testkit import write_sweep

    stopped = optlab("sweep", str(write_sweep(tmp_path, trials=2)), cwd=tmp_path, fault="train.step@5=sigint")
    assert stopped.returncode == 130, stopped.stderr
    assert _error_lines(stopped.stderr) == ["interrupted by SIGINT; rerun the same command to continue it to 2 trials"]
    assert "--resume" not in stopped.stderr


def test_ctrl_c_on_a_study_says_the_study_command_goes_on_where_it_stopped(tmp_path):
    stopped = optlab("study", "run", "symmetry", "--quick", "--population", "1", cwd=tmp_path,
                     fault="train.step@5=sigint")
    assert stopped.returncode == 130, stopped.stderr
    assert _error_lines(stopped.stderr) == ["interrupted by SIGINT; rerun the same command to go on where study "
                                            "symmetry stopped"]
