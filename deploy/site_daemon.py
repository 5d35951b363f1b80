"""What ``fedcondense site start`` runs: the site's SuperNode and its warm executor, supervised.

A *warm* site (the default, when :mod:`fedcondense.deploy.flower_pins` accepts the installed
Flower) is two processes on the site's machine:

* the SuperNode, started through ``python -m fedcondense.deploy.flower_pins supernode`` (Flower's
  ``flower-supernode`` with its sleeps paced) in ``--isolation process`` with a fresh SuperExec
  shared secret (32 random bytes, mode 0600, rewritten at every start), so only a holder of the
  secret can claim its tasks;
* the warm executor (:mod:`fedcondense.client.warm_executor`), which serves every ClientApp task
  in one process with the site's app loaded once.

:meth:`SiteDaemon.check_executor` and :meth:`SiteDaemon.check_supernode` are called in
``site start``'s foreground loop: an executor that exits is restarted (at most
:data:`MAX_RESTARTS` times per :data:`RESTART_WINDOW_S` seconds, then the daemon stops with one
line). A SuperNode that exits *before* it ever connected ends the daemon (wrong key, address or
certificate: its log says why); one that exits after it had connected — the coordinator's
SuperLink restarted, and one that keeps its state in memory forgets the site until the
coordinator registers its key again — is started again after :data:`SUPERNODE_RETRY_S` seconds
(doubling to at most 30 s, the same limit of restarts per window). :meth:`SiteDaemon.stop`
stops both. Both write, timestamped, into the site's log file.

A *cold* site (``FEDCONDENSE_SITE_EXECUTOR=flower``, or another Flower version) is Flower's own
``flower-supernode``, which starts a fresh ``flwr-clientapp`` process per message.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Sequence

from ..protocol.errors import FedcondenseError
from .processes import ManagedProcess

EXECUTOR_ENV = "FEDCONDENSE_SITE_EXECUTOR"
"""``warm`` (default) or ``flower`` (a ClientApp process per message, Flower's own)."""
MAX_RESTARTS = 5
RESTART_WINDOW_S = 300.0
SUPERNODE_RETRY_S = 2.0


def _exits_in_window(exits: list[float], now: float) -> list[float]:
    """The exit times still inside :data:`RESTART_WINDOW_S`, plus the one at ``now``."""
    return [t for t in exits if now - t < RESTART_WINDOW_S] + [now]


def warm_mode() -> tuple[bool, str]:
    """Whether this site runs warm, and a line saying why not when it does not."""
    from .flower_pins import problems

    choice = os.environ.get(EXECUTOR_ENV, "warm").strip().lower()
    if choice not in ("warm", "flower"):
        raise FedcondenseError(f"{EXECUTOR_ENV}={choice!r}: use 'warm' or 'flower'.")
    if choice == "flower":
        return False, f"{EXECUTOR_ENV}=flower: a Flower ClientApp process per message"
    found = problems()
    if found:
        return False, ("Flower's own executor (a ClientApp process per message, slow): "
                       + "; ".join(found))
    return True, ""


def write_secret(path: Path) -> Path:
    """A fresh SuperExec shared secret (32 random bytes), readable by the site user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(32))
    return path


def warm_supernode_argv(supernode_argv: Sequence[str], secret: Path) -> list[str]:
    """``flower-supernode ARGS`` → the paced SuperNode in process isolation."""
    return [sys.executable, "-m", "fedcondense.deploy.flower_pins", "supernode",
            *supernode_argv[1:], "--isolation", "process",
            "--superexec-auth-secret-file", str(secret)]


def runtime_address(supernode_argv: Sequence[str]) -> str:
    """``127.0.0.1:PORT`` of the Runtime API a SuperNode command line binds."""
    args = list(supernode_argv)
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    return f"{host}:{args[args.index('--port') + 1]}"


class SiteDaemon:
    """The site's SuperNode (+ warm executor) as managed processes.

    Parameters
    ----------
    name : str
        Site id (for messages).
    supernode_argv : sequence of str
        The plain ``flower-supernode`` command line (:func:`supernode_command`).
    log_file : Path
        Where both processes write (timestamped).
    env : mapping
        Environment (:func:`fedcondense.deploy.flower_commands.flower_env`).
    warm : bool
        Run the warm executor (else Flower's own per-message processes).
    secret_path : Path
        Where the SuperExec shared secret is written (warm only).
    """

    def __init__(self, name: str, supernode_argv: Sequence[str], log_file: Path,
                 env: dict[str, str], *, warm: bool, secret_path: Path) -> None:
        self.name, self.log_file, self.env, self.warm = name, log_file, env, warm
        self.secret_path = secret_path
        self.runtime_api = runtime_address(supernode_argv)
        self.argv = (warm_supernode_argv(supernode_argv, secret_path) if warm
                     else list(supernode_argv))
        self.supernode = self._supernode_process()
        self.executor: ManagedProcess | None = None
        self.restarts: list[float] = []
        self.restart_count = 0
        self.supernode_restarts: list[float] = []
        self.supernode_restart_count = 0
        self._supernode_due: float | None = None

    def _supernode_process(self) -> ManagedProcess:
        return ManagedProcess(f"SuperNode of {self.name}", self.argv, self.log_file,
                              env=self.env, timestamps=True)

    def executor_argv(self) -> list[str]:
        """The warm executor's command line."""
        return [sys.executable, "-m", "fedcondense.client.warm_executor", "--runtime-api",
                self.runtime_api, "--secret-file", str(self.secret_path)]

    def start(self) -> None:
        if self.warm:
            write_secret(self.secret_path)
        self.supernode.start()
        if self.warm:
            self._start_executor()

    def _start_executor(self) -> None:
        self.executor = ManagedProcess(f"warm executor of {self.name}", self.executor_argv(),
                                       self.log_file, env=self.env, timestamps=True).start()

    def check_executor(self) -> str | None:
        """Supervise the executor once: restart it if it died; a line when it dies too often.

        Returns ``None`` while the site can go on (:attr:`restart_count` grows on a restart).
        """
        if self.executor is None or (rc := self.executor.poll()) is None:
            return None
        now = time.monotonic()
        self.restarts = _exits_in_window(self.restarts, now)
        if len(self.restarts) > MAX_RESTARTS:
            return (f"the warm executor of site {self.name} exited {len(self.restarts)} "
                    f"times in {RESTART_WINDOW_S:g} s (last status {rc}); see {self.log_file}.")
        self.executor.stop(grace=1.0)
        self._start_executor()
        self.restart_count += 1
        return None

    def check_supernode(self, connected: bool) -> int | None:
        """Supervise the SuperNode once; its exit status when the daemon must stop.

        ``connected``: whether the SuperNode had connected to the coordinator since the
        daemon started. A SuperNode that exits before that stops the daemon (its status is
        returned at once); after that it is started again once :data:`SUPERNODE_RETRY_S`
        (doubling, at most 30 s) has passed, unless it exited more than
        :data:`MAX_RESTARTS` times in :data:`RESTART_WINDOW_S` seconds.
        """
        now = time.monotonic()
        if self._supernode_due is not None:
            if now >= self._supernode_due:
                self._supernode_due = None
                self.supernode = self._supernode_process().start()
                self.supernode_restart_count += 1
            return None
        rc = self.supernode.poll()
        if rc is None:
            return None
        if not connected:
            return rc
        self.supernode_restarts = _exits_in_window(self.supernode_restarts, now)
        if len(self.supernode_restarts) > MAX_RESTARTS:
            return rc
        delay = min(30.0, SUPERNODE_RETRY_S * 2 ** (len(self.supernode_restarts) - 1))
        self._supernode_due = now + delay
        return None

    def stop(self) -> None:
        """Stop the executor, then the SuperNode (each SIGTERM, then SIGKILL)."""
        if self.executor is not None:
            self.executor.stop(grace=5.0)
        self.supernode.stop()
