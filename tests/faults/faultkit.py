"""What the fault tests share: real optlab processes with a fault armed at an exact moment
(optlab.faults), real tmpfs mounts for full and read-only disks, a PostgreSQL server of a
test's own, and metric comparisons."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


TIMING = ("epoch_time_s", "samples_per_s")
SMALL_RUN = ["data=digits", "model=mlp", "model.depth=1", "model.width=16", "optimizer=momentum",
             "trainer.epochs=3", "trainer.progress=false"]


def optlab_command() -> list[str]:
    script = Path(sys.executable).with_name("optlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "optlab"]


def child_env(fault: str | None = None, **extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env.pop("OPTLAB_DEBUG", None)
    env.pop("OPTLAB_FAULT", None)
    if fault:
        env["OPTLAB_FAULT"] = fault
    return env


def optlab(*args: str, cwd: Path, fault: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run optlab to its end; with `fault`, that fault happens at exactly its point."""
    return subprocess.run([*optlab_command(), *args], cwd=cwd, env=child_env(fault), capture_output=True,
                          text=True, timeout=timeout)


def start(*args: str, cwd: Path, fault: str | None = None) -> subprocess.Popen:
    return subprocess.Popen([*optlab_command(), *args], cwd=cwd, env=child_env(fault), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def only_run(root: Path) -> Path:
    runs = sorted((root / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def metric_rows(run: Path) -> list[dict]:
    """metrics.csv without the timing columns (the same run on a CPU gives the same rest)."""
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def assert_complete_rows(table: Path) -> None:
    """Every line ends with a newline and has the header's number of fields."""
    text = table.read_text()
    assert text.endswith("\n"), "torn last line"
    rows = list(csv.reader(text.splitlines()))
    assert all(len(r) == len(rows[0]) for r in rows), [len(r) for r in rows]


def temp_files(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.tmp"))


def one_error_line(stderr: str, *words: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("optlab: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    for word in words:
        assert word in lines[0], lines[0]


class PrivatePostgres:
    """A PostgreSQL server of one test's own (initdb in a temp folder, loopback, a free port),
    so that stopping it mid-sweep disturbs no other test. Needs root (it runs as `postgres`)
    and PostgreSQL's binaries; `available()` says why not."""

    def __init__(self):
        import glob
        import socket

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bin = Path(bins[-1]) if bins else None
        self.root = None  # a folder under /tmp: the `postgres` user cannot reach pytest's (mode 700)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/optlab"

    def available(self) -> str | None:
        if self.bin is None or not (self.bin / "pg_ctl").exists():
            return "PostgreSQL's binaries are not installed (apt-get install postgresql)"
        return None if os.geteuid() == 0 else "starting a PostgreSQL server as `postgres` needs root"

    def _as_postgres(self, command: str) -> None:
        subprocess.run(["su", "postgres", "-s", "/bin/bash", "-c", command], check=True, capture_output=True,
                       timeout=120)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def create(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="optlab-test-pg-"))
        shutil.chown(self.root, "postgres")
        self._as_postgres(f"'{self.bin}/initdb' -D '{self.data}' -A trust -U postgres")
        self.start()
        self._as_postgres(f"'{self.bin}/createdb' -h 127.0.0.1 -p {self.port} -U postgres optlab")

    def start(self) -> None:
        self._as_postgres(f"'{self.bin}/pg_ctl' -D '{self.data}' -o \"-p {self.port} -k /tmp "
                          f"-c listen_addresses=127.0.0.1\" -l '{self.root}/log' start -w")

    def stop(self) -> None:
        self._as_postgres(f"'{self.bin}/pg_ctl' -D '{self.data}' stop -m fast -w")

    def processes(self) -> list[int]:
        """The server's postmaster and its children (one per connection), by their ids."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def signal_all(self, signum: int) -> None:
        """SIGSTOP freezes the server (its connections accept bytes and answer none); SIGCONT thaws it."""
        for pid in self.processes():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        subprocess.run(["su", "postgres", "-s", "/bin/bash", "-c", f"'{self.bin}/pg_ctl' -D '{self.data}' stop -m "
                        f"immediate"], capture_output=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)
