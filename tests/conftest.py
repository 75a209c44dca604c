"""Shared fixtures: a composed, shrunk config per test, ways to run the real CLI, one storage
matrix for sweeps (SQLite and PostgreSQL), run folders whose numbers are known, tmpfs mounts.
Helpers that are not fixtures are in testkit.py."""
from __future__ import annotations

import copy
import math
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from testkit import TINY, config, run_optlab, write_run

torch.set_num_threads(1)  # the suite runs on 2 cores; tests must not oversubscribe them

POSTGRES_URL = "OPTLAB_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """OMP_NUM_THREADS=1 for every test: in-process sweeps size torch threads from it."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def composed():
    """Configs composed once per test run, by overrides: Hydra's compose is the slow part of
    making a config, and hundreds of tests ask for the same few."""
    from optlab.config.compose import compose

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
    from optlab.cli import main

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


# ---------------------------------------------------------------- sweep storages

@pytest.fixture
def fresh_postgres():
    """A new, empty database on the test server (OPTLAB_TEST_POSTGRES_URL), dropped afterwards:
    the sweeps under test create Optuna's tables themselves, racing when there are two."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(os.environ[POSTGRES_URL])
    name = f"optlab_{uuid.uuid4().hex[:10]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """One matrix over the storages a sweep runs on: a SQLite file under tmp_path, or a fresh
    PostgreSQL database on the test server (OPTLAB_TEST_POSTGRES_URL, set by .ci/run), which
    skips, saying why, when none is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if not os.environ.get(POSTGRES_URL):
        pytest.skip(f"{POSTGRES_URL} is unset (eval \"$(bash .ci/postgres.sh)\" starts a server)")
    return request.getfixturevalue("fresh_postgres")


# ---------------------------------------------------------------- run folders

@pytest.fixture
def runs_root(tmp_path) -> Path:
    """Hand-written run folders. adam: 3 completed seeds (best 0.90, 0.92, 0.97); sgd: 2
    completed (0.80, 0.84), 1 diverged, 1 pruned."""
    root = tmp_path / "runs"
    write_run(root, "adam-0", config("adam", seed=0), [0.50, 0.90, 0.85])
    write_run(root, "adam-1", config("adam", seed=1), [0.60, 0.80, 0.92])
    write_run(root, "adam-2", config("adam", seed=2), [0.95, 0.97, 0.96])
    write_run(root, "sgd-0", config("sgd", 0.1, seed=0), [0.40, 0.70, 0.80])
    write_run(root, "sgd-1", config("sgd", 0.1, seed=1), [0.50, 0.84, 0.83])
    write_run(root, "sgd-2", config("sgd", 0.1, seed=2), [0.30, math.nan], status="diverged")
    write_run(root, "sgd-3", config("sgd", 0.1, seed=3), [0.20], status="pruned")
    return root


# ---------------------------------------------------------------- a real browser

@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download cannot work offline),
    one for every browser test of a run; skips, saying why, where Chromium cannot start."""
    import shutil

    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install '.[test]')")
    executable = os.environ.get("OPTLAB_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        pytest.skip("no chromium on PATH (bash .ci/chromium.sh installs Debian's)")
    with sync_playwright() as playwright:
        try:
            # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
            chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Error as exc:
            pytest.skip(f"{executable} does not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()
