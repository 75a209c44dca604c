"""Shared fixtures: a composed, shrunk config per test and a way to run the real CLI."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # the suite runs on 2 cores; tests must not oversubscribe them

REPO = Path(__file__).resolve().parents[1]
TINY = ["trainer.epochs=2", "trainer.progress=false"]


def optlab_executable() -> list[str]:
    """The installed console script next to this interpreter, else `python -m runner`."""
    script = Path(sys.executable).with_name("optlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "runner"]


def run_optlab(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("OPTLAB_DEBUG", None) if env is None or "OPTLAB_DEBUG" not in env else None
    return subprocess.run([*optlab_executable(), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def composed():
    """Configs composed once per test run, by overrides: Hydra's compose is the slow part of
    making a config, and hundreds of tests ask for the same few."""
    from runner.config.compose import compose

    cache: dict[tuple, object] = {}

    def get(overrides: tuple):
        if overrides not in cache:
            cache[overrides] = compose([*TINY, *overrides])
        return cache[overrides]

    return get


@pytest.fixture
def compose_cfg(tmp_path, composed):
    """compose_cfg(*overrides) -> a validated config: 2 epochs, quiet, writing under tmp_path
    (a copy of the one composed for these overrides this test run)."""
    def make(*overrides: str):
        cfg = copy.deepcopy(composed(tuple(overrides)))
        if not any(o.startswith("trainer.out_dir=") for o in overrides):
            cfg.trainer.out_dir = str(tmp_path / "outputs")
        return cfg

    return make


@pytest.fixture
def optlab_process(tmp_path):
    """optlab_process(*args) runs the installed `optlab` command in a subprocess from tmp_path
    (not the repo root): for what only a real process shows (the console script, signals).
    Tests that use it are marked slow."""
    def run(*args: str, env: dict | None = None, timeout: float = 300):
        return run_optlab(*args, cwd=tmp_path, env=env, timeout=timeout)

    return run


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def optlab(tmp_path, monkeypatch, capsys):
    """optlab(*args) runs the CLI's main() in this process, from tmp_path (not the repo root):
    its exit code, stdout and stderr as a subprocess would give them, without a process's
    start-up (seconds of importing torch)."""
    from runner.cli import main

    def run(*args: str, env: dict | None = None, timeout: float | None = None) -> Finished:
        monkeypatch.chdir(tmp_path)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Finished(code, captured.out, captured.err)

    return run


class Tmpfs:
    """Real tmpfs mounts under tmp_path (needs root): a disk that fills, a read-only disk."""

    def __init__(self, root: Path):
        self.root, self.mounts = root, []

    def mount(self, size_kb: int, name: str = "disk") -> Path:
        path = self.root / name
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the full/read-only disk tests need root")
        self.mounts.append(path)
        return path

    def remount(self, path: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)

    def unmount_all(self) -> None:
        for path in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    """Real tmpfs mounts under tmp_path (needs root): a disk that fills up, a read-only disk."""
    disks = Tmpfs(tmp_path)
    yield disks
    disks.unmount_all()
