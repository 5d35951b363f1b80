"""``site start``'s supervision of its SuperNode (real child processes, no Flower).

A SuperNode that exits before it ever connected stops the daemon; one that exits after it had
connected (the coordinator's SuperLink restarted and forgot it) is started again after a
back-off, at most ``MAX_RESTARTS`` times per window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from fedcondense.deploy import site_daemon
from fedcondense.deploy.site_daemon import SiteDaemon


def _daemon(tmp_path: Path, code: str) -> SiteDaemon:
    argv = [sys.executable, "-c", code, "--port", "9"]  # runtime_address reads --port
    return SiteDaemon("site-x", argv, tmp_path / "site.log", env={}, warm=False,
                      secret_path=tmp_path / "secret")


def _poll_until(daemon: SiteDaemon, connected: bool, done, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rc = daemon.check_supernode(connected)
        if done(rc):
            return rc
        time.sleep(0.02)
    raise AssertionError("supervision did not reach the expected state")


def test_exit_before_connecting_stops_the_daemon(tmp_path):
    d = _daemon(tmp_path, "import sys; sys.exit(3)")
    d.start()
    assert _poll_until(d, False, lambda rc: rc is not None) == 3
    assert d.supernode_restart_count == 0


def test_exit_after_connecting_restarts_with_backoff_then_gives_up(tmp_path, monkeypatch):
    monkeypatch.setattr(site_daemon, "SUPERNODE_RETRY_S", 0.05)
    monkeypatch.setattr(site_daemon, "MAX_RESTARTS", 2)
    d = _daemon(tmp_path, "print('up', flush=True); import sys; sys.exit(5)")
    d.start()
    first = d.supernode.pid
    _poll_until(d, True, lambda rc: d.supernode_restart_count == 1)
    assert d.supernode.pid != first
    assert d.supernode.log_text().count("up") >= 1
    # exits again and again: restarted MAX_RESTARTS times, then its status ends the daemon
    assert _poll_until(d, True, lambda rc: rc is not None) == 5
    assert d.supernode_restart_count == 2
    d.stop()


def test_a_running_supernode_is_left_alone(tmp_path):
    d = _daemon(tmp_path, "import time; time.sleep(30)")
    d.start()
    try:
        for _ in range(5):
            assert d.check_supernode(True) is None
        assert d.supernode.poll() is None and d.supernode_restart_count == 0
    finally:
        d.stop()
    assert d.supernode.poll() is not None


@pytest.mark.parametrize("n_restarts", [1, 3])
def test_backoff_doubles(tmp_path, monkeypatch, n_restarts):
    monkeypatch.setattr(site_daemon, "SUPERNODE_RETRY_S", 0.2)
    d = _daemon(tmp_path, "import sys; sys.exit(1)")
    d.start()
    for _ in range(n_restarts):
        _poll_until(d, True, lambda rc, k=d.supernode_restart_count: d.supernode_restart_count > k)
    d.supernode.wait_exit(10)
    assert d.check_supernode(True) is None  # schedules the next start
    assert d._supernode_due is not None
    wait = d._supernode_due - time.monotonic()
    assert 0.2 * 2 ** n_restarts * 0.8 < wait <= 0.2 * 2 ** n_restarts + 0.01
    d.stop()
