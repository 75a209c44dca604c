"""Fixtures of the fault tests (the helpers they share are in faultkit.py)."""
import pytest

from faultkit import Tmpfs


@pytest.fixture
def tmpfs(tmp_path):
    """Real tmpfs mounts under tmp_path: a disk that fills up, a read-only disk."""
    disks = Tmpfs(tmp_path)
    yield disks
    disks.unmount_all()
