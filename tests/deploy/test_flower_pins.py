"""The Flower internals a warm site patches are exactly those read in flwr 1.41.0.

If this fails after a Flower upgrade, re-read the places named in
``fedcondense/deploy/flower_pins.py`` in the new source, re-time a round with
``python -m fedcondense.deploy.bench_round`` and update the pins (until then ``site start``
falls back to Flower's own executor and says so).
"""

from __future__ import annotations

import flwr
import flwr.supernode.start_client_internal as sci
import pytest

from fedcondense.deploy import flower_pins
from fedcondense.deploy.site_daemon import (
    EXECUTOR_ENV,
    runtime_address,
    warm_mode,
    warm_supernode_argv,
    write_secret,
)


def test_installed_flower_matches_the_pinned_internals() -> None:
    assert flwr.__version__ == flower_pins.PINNED_FLOWER, (
        f"Flower {flwr.__version__} installed; the warm site is pinned to "
        f"{flower_pins.PINNED_FLOWER}: re-check fedcondense/deploy/flower_pins.py")
    assert flower_pins.problems() == []


def test_another_flower_version_falls_back_to_flowers_executor(monkeypatch) -> None:
    monkeypatch.setattr(flwr, "__version__", "1.99.0")
    assert "1.99.0" in flower_pins.problems()[0]
    warm, why = warm_mode()
    assert not warm and "1.99.0" in why
    with pytest.raises(RuntimeError, match="pinned"):
        flower_pins.patch_supernode()


def test_operator_can_choose_flowers_executor(monkeypatch) -> None:
    monkeypatch.setenv(EXECUTOR_ENV, "flower")
    assert warm_mode()[0] is False
    monkeypatch.setenv(EXECUTOR_ENV, "warm")
    assert warm_mode() == (True, "")


def test_pacer_polls_fast_only_while_a_run_is_active() -> None:
    pacer = flower_pins.RunPacer(active_poll=0.1, window=60.0, idle_poll=3.0)
    assert pacer.interval(3) == 3.0 and pacer.interval(0.5) == 0.5  # idle: Flower's own
    pacer.activity()
    assert pacer.interval(3) == 0.1 and pacer.interval(0.5) == 0.1
    pacer._last -= 61.0
    assert pacer.interval(3) == 3.0


def test_patch_replaces_exactly_the_pinned_globals(monkeypatch) -> None:
    for name in ("time", "pull_objects", "_pull_and_store_message"):
        monkeypatch.setattr(sci, name, getattr(sci, name))  # restored after the test
    calls = []
    monkeypatch.setattr(sci, "_pull_and_store_message", lambda *a, **k: calls.pop(0))
    pacer = flower_pins.RunPacer(active_poll=0.1, window=60.0)
    # problems() compares module globals to the originals: patch after it looked
    monkeypatch.setattr(flower_pins, "problems", lambda: [])
    flower_pins.patch_supernode(pacer, pull_backoff=0.05)
    assert sci.time is pacer and sci.pull_objects.keywords == {"initial_backoff": 0.05}
    calls.extend([None, 42])
    assert sci._pull_and_store_message() is None and pacer.interval(3) == 3.0  # nothing came
    assert sci._pull_and_store_message() == 42 and pacer.interval(3) == 0.1  # a message came


def test_warm_supernode_command_line(tmp_path) -> None:
    plain = ["/x/flower-supernode", "--superlink", "h:1", "--host", "127.0.0.1",
             "--port", "9094"]
    secret = write_secret(tmp_path / "s.secret")
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32
    before = secret.read_bytes()
    assert write_secret(secret).read_bytes() != before  # fresh at every start
    argv = warm_supernode_argv(plain, secret)
    assert argv[1:4] == ["-m", "fedcondense.deploy.flower_pins", "supernode"]
    assert argv[4:10] == plain[1:]
    assert argv[-4:] == ["--isolation", "process", "--superexec-auth-secret-file", str(secret)]
    assert runtime_address(plain) == "127.0.0.1:9094"
