"""A sweep's one signal contract: it records, forwards and restores."""
from __future__ import annotations

import signal

import pytest

from optlab.errors import Interrupted


def test_one_signal_contract_records_forwards_and_restores(monkeypatch):
    from optlab.sweep import signals
    from optlab.sweep.signals import check_stop, stop_handlers, stop_signal

    # the record outlives the block (the next install forgets it): this test's signals go in
    # a list of their own, so that a Worker run later in this process does not see them
    monkeypatch.setattr(signals, "_received", [])
    before = signal.getsignal(signal.SIGTERM)
    forwarded = []
    with stop_handlers(forward=forwarded.append):
        check_stop()  # nothing recorded yet
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        assert forwarded == [signal.SIGTERM, signal.SIGINT] and stop_signal() == signal.SIGTERM
        with pytest.raises(Interrupted) as stopped:
            check_stop()
        assert stopped.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before
