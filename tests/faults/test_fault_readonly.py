"""Output folders the machine refuses: a read-only file system (a real read-only tmpfs; root
ignores permission bits) and a file standing where a folder should be. Every command says
so in one line naming the path and exits 5, leaving nothing behind."""
from __future__ import annotations

import pytest

import yaml
from faultkit import SMALL_RUN, one_error_line, optlab

pytestmark = pytest.mark.slow  # real processes

WITH_PROGRESS = [o for o in SMALL_RUN if not o.startswith("trainer.progress")]  # lr-find once printed a blank line first
TINY_SWEEP = {"metric": "val_acc", "sampler": "random", "trials": 1, "base": [*SMALL_RUN, "trainer.epochs=1"],
              "space": {"optimizer.lr": {"type": "float", "low": 0.05, "high": 0.5, "log": True}}}


def commands(out: str, runs: str) -> dict[str, list[str]]:
    return {
        "train": ["train", *SMALL_RUN, "trainer.epochs=1", f"trainer.out_dir={out}"],
        "sweep": ["sweep", "sweep.yaml", f"trainer.out_dir={out}"],
        "lr-find": ["lr-find", *WITH_PROGRESS, "--steps", "20", f"trainer.out_dir={out}"],
        "report": ["report", runs, "--out", f"{out}/report"],
    }


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("made")
    done = optlab("train", *SMALL_RUN, "trainer.epochs=1", f"trainer.out_dir={root}", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def finished_runs(tmp_path, made):
    """A folder of runs to report on, and a sweep file beside it."""
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(TINY_SWEEP))
    return str(made)


@pytest.mark.parametrize("command", ["train", "sweep", "lr-find", "report"])
def test_a_read_only_output_folder_exits_5_naming_it(tmpfs, tmp_path, finished_runs, command):
    disk = tmpfs.mount(1024, "readonly")
    tmpfs.remount(disk, "ro")
    result = optlab(*commands(str(disk), finished_runs)[command], cwd=tmp_path)
    assert result.returncode == 5, result.stderr
    one_error_line(result.stderr, str(disk), "read-only")
    assert result.stderr.startswith("optlab: error:")


@pytest.mark.parametrize("command", ["train", "sweep", "lr-find", "report"])
def test_a_file_where_the_output_folder_should_be_exits_5_naming_it(tmp_path, finished_runs, command):
    (tmp_path / "blocked").write_text("a file, not a folder")
    result = optlab(*commands("blocked", finished_runs)[command], cwd=tmp_path)
    assert result.returncode == 5, result.stderr
    one_error_line(result.stderr, "blocked", "a file stands where a folder should be")
    assert result.stderr.startswith("optlab: error:")
