"""The private Flower 1.41 internals a warm site touches, in one place, pinned to the version.

Why: Flower 1.41 has no supported setting for three waits that dominate a deployed SecAgg+
round (``../shared/facts/flower-1.41.md``; file:line as in flwr 1.41.0):

* the SuperNode sleeps a hard-coded **3 s** when the SuperLink had nothing for it
  (``supernode/start_client_internal.py:263``) and **0.5 s** between looks for its ClientApp's
  reply (``:470``, ``:506``);
* the SuperNode pulls a message's contents with ``pull_objects`` and its default
  ``PULL_INITIAL_BACKOFF = 1`` s retry delay (``:415``, ``supercore/constant.py:48``);
* ``flwr-clientapp`` serves one message per process (``supernode/runtime/run_clientapp.py``);
  fedcondense's own executor (:mod:`fedcondense.client.warm_executor`) replaces it, reusing
  that module's ``pull_task_input``-style steps, ``push_message`` and ``push_task_output``.

:func:`patch_supernode` paces the SuperNode instead: while a run is active (a message arrived
in the last :data:`ACTIVE_WINDOW_S` seconds) every sleep is capped at :data:`ACTIVE_POLL_S`;
after that the SuperNode polls every :data:`IDLE_POLL_S` seconds as Flower does. Content
pulls retry after :data:`PULL_BACKOFF_S`. Nothing else changes: TLS, node authentication,
secure aggregation, the Runtime API's task tokens and heartbeats are Flower's own.

Every internal used is checked by :func:`problems` (version, names, signatures and the exact
source lines patched); on any other Flower version, or if one check fails, ``fedcondense site
start`` falls back to Flower's own ``flower-supernode`` with a ClientApp process per message
(slow but correct) and says so. ``tests/deploy/test_flower_pins.py`` fails loudly when these
internals change.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
import time
from functools import partial
from typing import Any, Sequence

PINNED_FLOWER = "1.41.0"
"""The only Flower version whose internals were read and timed for these patches."""
ACTIVE_POLL_S = 0.2
"""SuperNode poll / reply-wait cap while a run is active (Flower: 3 s and 0.5 s). Measured on
loopback: three SuperNodes polling every 0.1 s kept the SuperLink at ~0.2 of a core, which on
2 cores cost rounds more than the shorter waits saved."""
ACTIVE_WINDOW_S = 120.0
"""A run counts as active this long after the SuperNode last received a message."""
IDLE_POLL_S = 3.0
"""Poll interval when no run is active (Flower's own)."""
PULL_BACKOFF_S = 0.05
"""First retry delay when a message's contents are not stored yet (Flower: 1 s)."""

_SUPERNODE_SLEEPS = {"start_client_internal": ["time.sleep(3)"],
                     "_push_messages": ["time.sleep(0.5)", "time.sleep(0.5)"]}


def flower_version() -> str:
    """The installed Flower version."""
    import flwr

    return str(flwr.__version__)


def _has_params(fn: Any, names: Sequence[str]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return all(n in params for n in names)


def problems() -> list[str]:
    """What differs from the pinned Flower internals (empty: the warm site may be used)."""
    found: list[str] = []
    version = flower_version()
    if version != PINNED_FLOWER:
        return [f"Flower {version} is installed; the warm site is pinned to {PINNED_FLOWER}"]
    try:
        import flwr.supernode.start_client_internal as sci
        from flwr.supercore.constant import TaskType
        from flwr.supercore.inflatable import inflatable_utils
        from flwr.supercore.interceptors import (  # noqa: F401
            RuntimeTokenHttpInterceptor,
            SuperExecAuthHttpInterceptor,
        )
        from flwr.supernode.runtime import run_clientapp
    except ImportError as exc:
        return [f"Flower internals moved: {exc}"]
    for fn_name, lines in _SUPERNODE_SLEEPS.items():
        src = inspect.getsource(getattr(sci, fn_name))
        for line in set(lines):
            if src.count(line) != lines.count(line):
                found.append(f"start_client_internal.{fn_name} no longer holds "
                             f"{lines.count(line)}× '{line}'")
    src = inspect.getsource(sci.start_client_internal)
    if "_pull_and_store_message(" not in src:
        found.append("start_client_internal no longer calls _pull_and_store_message")
    if "pull_objects(" not in inspect.getsource(sci._pull_and_store_message):
        found.append("_pull_and_store_message no longer calls pull_objects")
    if getattr(sci, "time", None) is not time or sci.pull_objects is not \
            inflatable_utils.pull_objects:
        found.append("start_client_internal's module globals time/pull_objects changed")
    if not _has_params(inflatable_utils.pull_objects, ["initial_backoff"]) or not _has_params(
            inflatable_utils.pull_and_inflate_object_from_tree, ["initial_backoff"]):
        found.append("pull_objects/pull_and_inflate_object_from_tree lost initial_backoff")
    for name, params in (("push_message", ["client", "message", "context"]),
                         ("push_task_output", ["client", "context", "sub_status", "details"])):
        if not _has_params(getattr(run_clientapp, name, None), params):
            found.append(f"run_clientapp.{name} changed its signature")
    if not _has_params(SuperExecAuthHttpInterceptor, ["master_secret", "protected_methods"]):
        found.append("SuperExecAuthHttpInterceptor changed its signature")
    if TaskType.CLIENT_APP.value != "flwr-clientapp":
        found.append("TaskType.CLIENT_APP changed")
    try:
        cli = importlib.import_module("flwr.supernode.cli.flower_supernode")
        args = cli._parse_args_run_supernode().parse_args(
            ["--insecure", "--isolation", "process", "--superexec-auth-secret-file", "s"])
        if (args.isolation, args.superexec_auth_secret_file) != ("process", "s"):
            found.append("flower-supernode reads --isolation/--superexec-auth-secret-file "
                         "differently")
    except (AttributeError, SystemExit):
        found.append("flower-supernode lost --isolation process or "
                     "--superexec-auth-secret-file")
    return found


class RunPacer:
    """``time.sleep`` stand-in for the SuperNode loop: short sleeps while a run is active."""

    def __init__(self, active_poll: float = ACTIVE_POLL_S, window: float = ACTIVE_WINDOW_S,
                 idle_poll: float = IDLE_POLL_S) -> None:
        self.active_poll, self.window, self.idle_poll = active_poll, window, idle_poll
        self._last = -float("inf")
        self._lock = threading.Lock()

    def activity(self) -> None:
        """A message arrived: poll fast for the next ``window`` seconds."""
        with self._lock:
            self._last = time.monotonic()

    def interval(self, requested: float) -> float:
        """How long to sleep instead of ``requested``."""
        with self._lock:
            active = time.monotonic() - self._last < self.window
        return min(requested, self.active_poll) if active else min(requested, self.idle_poll)

    def sleep(self, seconds: float) -> None:
        time.sleep(self.interval(seconds))

    def __getattr__(self, name: str) -> Any:  # monotonic(), time(), ... stay the real ones
        return getattr(time, name)


def patch_supernode(pacer: RunPacer | None = None,
                    pull_backoff: float = PULL_BACKOFF_S) -> RunPacer:
    """Pace this process's SuperNode loop (see the module docstring); return the pacer.

    Raises
    ------
    RuntimeError
        If :func:`problems` finds the internals differ from the pinned ones.
    """
    found = problems()
    if found:
        raise RuntimeError("; ".join(found))
    import flwr.supernode.start_client_internal as sci
    from flwr.supercore.inflatable.inflatable_utils import pull_objects

    pacer = pacer or RunPacer()
    pull_and_store = sci._pull_and_store_message

    def paced_pull_and_store(*args: Any, **kwargs: Any) -> Any:
        run_id = pull_and_store(*args, **kwargs)
        if run_id is not None:
            pacer.activity()
        return run_id

    sci.time = pacer  # type: ignore[assignment]
    sci._pull_and_store_message = paced_pull_and_store
    sci.pull_objects = partial(pull_objects, initial_backoff=pull_backoff)
    return pacer


def supernode_main(argv: Sequence[str]) -> None:
    """``flower-supernode ARGV`` with the pinned patches applied (Flower's own if they fail)."""
    from flwr.supernode.cli.flower_supernode import flower_supernode

    try:
        patch_supernode()
    except RuntimeError as exc:
        print(f"fedcondense: Flower's SuperNode runs unpatched ({exc})", flush=True)
    sys.argv = ["flower-supernode", *argv]
    flower_supernode()


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "supernode":
        raise SystemExit("usage: python -m fedcondense.deploy.flower_pins supernode "
                         "[flower-supernode options]")
    supernode_main(sys.argv[2:])
