"""Start and stop Flower 1.41 SuperLink/SuperNode processes with logs, timeouts and cleanup.

Used by ``fedcondense site start``, ``deploy/local-consortium.sh`` and the integration tests.
Every process is started in its own session (process group) with stdout+stderr appended to a
log file; :meth:`ManagedProcess.stop` terminates the group *and* every descendant found under
``/proc`` (Flower starts ``flower-superexec`` in a new session of its own), first with SIGTERM,
then SIGKILL after a grace period. The context managers stop what they started on any exit.

Command lines and the log patterns that mark readiness live in
:mod:`fedcondense.deploy.flower_commands`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Iterator, Mapping, Sequence

from ..protocol.errors import FedcondenseError
from .flower_commands import (
    SUPERLINK_READY,
    SUPERNODE_READY,
    flower_env,
    free_port,
    port_open,
    superlink_command,
    supernode_command,
)

ANSI = re.compile(rb"\x1b\[[0-9;]*m")


class ProcessError(FedcondenseError):
    """A managed process exited or did not become ready in time."""


# --------------------------------------------------------------------------- /proc helpers
def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children = _children_map()
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is "alive" for kill(0) but finished
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------- process
class ManagedProcess:
    """One long-running child process with a log file and bounded, guaranteed shutdown.

    Parameters
    ----------
    name : str
        Label used in error messages.
    argv : sequence of str
        Command line.
    log_path : str or Path
        stdout and stderr are appended here (folder created if missing).
    env : mapping, optional
        Environment (see :func:`flower_env`).
    cwd : str or Path, optional
        Working directory.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: str | Path, *,
                 env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
                 timestamps: bool = False) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.timestamps = timestamps
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._known: set[int] = set()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "ManagedProcess":
        """Start the process in a new session; output goes to the log file.

        With ``timestamps`` every line is prefixed with the UTC time and stripped of colour
        codes (for operators' logs); otherwise the output is written as it comes.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        out: int | IO[bytes] = subprocess.PIPE if self.timestamps else self._log
        self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                      start_new_session=True)
        if self.timestamps:
            self._pump = threading.Thread(target=self._copy_lines, daemon=True,
                                          name=f"log {self.name}")
            self._pump.start()
        return self

    def _copy_lines(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None and self._log
        log = self._log
        for raw in iter(self.popen.stdout.readline, b""):
            stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            line = ANSI.sub(b"", raw.rstrip(b"\r\n"))
            log.write(stamp.encode() + b" " + line + b"\n")
            log.flush()

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.popen.pid

    def poll(self) -> int | None:
        """Exit status, or ``None`` while running."""
        self._remember_descendants()
        return None if self.popen is None else self.popen.poll()

    def log_text(self) -> str:
        """The whole log so far (ANSI colour codes removed)."""
        try:
            raw = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return re.sub(r"\x1b\[[0-9;]*m", "", raw)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float, *,
                     fail_on_exit: bool = True) -> re.Match[str]:
        """Wait until a log line matches ``pattern``; return the match.

        Raises
        ------
        ProcessError
            After ``timeout`` seconds, or as soon as the process exits without the line
            (when ``fail_on_exit``), quoting the end of the log.
        """
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text())
            if m:
                return m
            rc = self.poll()
            if rc is not None and fail_on_exit:
                m = rx.search(self.log_text())
                if m:
                    return m
                raise ProcessError(f"{self.name} exited with status {rc} before "
                                   f"'{rx.pattern}' appeared; log {self.log_path}: "
                                   f"{self.log_tail(6)}")
            if time.monotonic() > deadline:
                raise ProcessError(f"{self.name}: '{rx.pattern}' did not appear within "
                                   f"{timeout:g} s; log {self.log_path}: {self.log_tail(6)}")
            time.sleep(0.1)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself; return its status."""
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        self._remember_descendants()
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"{self.name} still running after {timeout:g} s; log "
                               f"{self.log_path}") from None

    def _remember_descendants(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self._known.update(descendants(self.popen.pid))

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the process group and all descendants; SIGKILL what is left after ``grace``.

        Safe to call more than once and on a process that already exited.
        """
        if self.popen is None:
            return None
        self._remember_descendants()
        targets = {self.popen.pid, *self._known}
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in targets - {self.popen.pid}:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.popen.poll()
            if not any(_alive(p) for p in targets):
                break
            time.sleep(0.1)
        else:
            for pid in targets:
                _signal(pid, signal.SIGKILL)
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            rc = self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        if self._pump is not None:
            self._pump.join(timeout=5)
            self._pump = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def kill(self) -> int | None:
        """Crash the process: SIGKILL its group and every descendant at once (no grace)."""
        if self.popen is None:
            return None
        self._remember_descendants()
        for pid in {self.popen.pid, *self._known}:
            _signal(pid, signal.SIGKILL)
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.stop(grace=5.0)  # reaps, closes the log

    def __enter__(self) -> "ManagedProcess":
        if self.popen is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- roles
@contextmanager
def running_superlink(*, host: str, port: int, ca_cert: str | Path, cert: str | Path,
                      key: str | Path, log_path: str | Path, flwr_home: str | Path,
                      database: str | Path | None = None, timeout: float = 30.0,
                      extra: Sequence[str] = ()) -> Iterator[ManagedProcess]:
    """Run a TLS + node-auth SuperLink until the ``with`` block ends; wait until it listens."""
    proc = ManagedProcess("SuperLink", superlink_command(
        host=host, port=port, ca_cert=ca_cert, cert=cert, key=key, database=database,
        extra=extra), log_path, env=flower_env(flwr_home))
    try:
        proc.start()
        proc.wait_for_log(SUPERLINK_READY, timeout)
        deadline = time.monotonic() + timeout
        while not port_open(host, port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise ProcessError(f"SuperLink not accepting connections on {host}:{port}; "
                                   f"log {proc.log_path}: {proc.log_tail(6)}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.stop()


@contextmanager
def running_supernode(*, name: str, superlink: str, root_certificates: str | Path,
                      private_key: str | Path, log_path: str | Path, flwr_home: str | Path,
                      node_config: str | Path | None = None, runtime_port: int | None = None,
                      timeout: float = 30.0, wait_ready: bool = True,
                      max_wait_time: float | None = None) -> Iterator[ManagedProcess]:
    """Run a SuperNode until the ``with`` block ends.

    With ``wait_ready`` the block starts only once the SuperLink has activated the node
    (log ``SuperNode ID: N``); a refused node raises :class:`ProcessError` with its log tail.
    """
    proc = ManagedProcess(name, supernode_command(
        superlink=superlink, root_certificates=root_certificates, private_key=private_key,
        node_config=node_config, runtime_port=runtime_port or free_port(),
        max_wait_time=max_wait_time), log_path, env=flower_env(flwr_home))
    try:
        proc.start()
        if wait_ready:
            proc.wait_for_log(SUPERNODE_READY, timeout)
        yield proc
    finally:
        proc.stop()
