"""Bounded wrappers around the Flower 1.41 ``flwr`` CLI for the coordinator's chores.

* :func:`write_connection` adds a SuperLink connection to ``$FLWR_HOME/config.toml``::

      [superlink.consortium]
      address = "coordinator.example.org:9093"
      root-certificates = "/etc/fedcondense/pki/ca.crt"

* :func:`register_supernode` — ``flwr supernode register node.pub consortium`` (the SuperLink
  must run with ``--enable-supernode-auth``; only registered keys can activate);
* :func:`submit_run` — ``flwr run APP_DIR consortium --run-config ...``;
* :func:`run_status` / :func:`wait_for_run` — ``flwr ls consortium --run-id N --format json``.

Every call has a timeout and raises :class:`~fedcondense.protocol.errors.FedcondenseError`
with the CLI's own last lines on failure.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..protocol.errors import FedcondenseError
from .flower_commands import flower_bin, flower_env


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_connection(flwr_home: str | Path, name: str, address: str,
                     root_certificates: str | Path, *, default: bool = True) -> Path:
    """Write ``$FLWR_HOME/config.toml`` with one TLS SuperLink connection ``name``.

    An existing config is replaced only in tests' private ``FLWR_HOME``; operators usually
    keep one file per coordinator account.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise FedcondenseError(f"connection name {name!r}: use letters, digits, '-' or '_'.")
    home = Path(flwr_home)
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]"]
    if default:
        lines.append(f"default = {_toml_str(name)}")
    lines += ["", f"[superlink.{name}]", f"address = {_toml_str(address)}",
              f"root-certificates = {_toml_str(str(Path(root_certificates).resolve()))}", ""]
    path = home / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    tomllib.loads(path.read_text(encoding="utf-8"))  # refuse to leave a broken file behind
    return path


def flwr(args: Sequence[str], *, flwr_home: str | Path, timeout: float,
         cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``flwr ARGS`` with the isolated environment; raise on timeout or failure."""
    argv = [flower_bin("flwr"), *args]
    try:
        done = subprocess.run(argv, env=flower_env(flwr_home), cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FedcondenseError(f"`flwr {' '.join(args)}` did not finish within {timeout:g} s.") \
            from None
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-4:])
        raise FedcondenseError(f"`flwr {' '.join(args)}` failed ({done.returncode}): {tail}")
    return done


def _json_tail(text: str) -> Any:
    """The JSON document at the end of ``text`` (``flwr --format json`` may print a banner)."""
    start = text.find("{")
    if start < 0:
        raise FedcondenseError(f"no JSON in flwr output: {text.strip()[:200]}")
    return json.loads(text[start:])


def register_supernode(flwr_home: str | Path, connection: str, public_key: str | Path, *,
                       name: str | None = None, timeout: float = 30.0) -> int:
    """Register a site's OpenSSH public key on the SuperLink; return the new node id."""
    args = ["supernode", "register", str(public_key), connection, "--format", "json"]
    if name:
        args += ["--name", name]
    done = flwr(args, flwr_home=flwr_home, timeout=timeout)
    data = _json_tail(done.stdout)
    if not data.get("success"):
        raise FedcondenseError(f"registering {public_key} failed: {data}")
    return int(data["node-id"])


def submit_run(flwr_home: str | Path, app_dir: str | Path, connection: str, *,
               run_config: Mapping[str, str | int | float | bool] | None = None,
               timeout: float = 60.0) -> int:
    """``flwr run APP_DIR CONNECTION``; return the run id (the run continues on the link)."""
    args = ["run", str(app_dir), connection, "--format", "json"]
    if run_config:
        parts = []
        for k, v in run_config.items():
            if isinstance(v, bool):
                parts.append(f"{k}={'true' if v else 'false'}")
            elif isinstance(v, (int, float)):
                parts.append(f"{k}={v!r}")
            else:
                parts.append(f"{k}={_toml_str(str(v))}")
        args += ["--run-config", " ".join(parts)]
    done = flwr(args, flwr_home=flwr_home, timeout=timeout)
    data = _json_tail(done.stdout)
    if not data.get("success"):
        raise FedcondenseError(f"flwr run failed: {data}")
    return int(data["run-id"])


def run_status(flwr_home: str | Path, connection: str, run_id: int, *,
               timeout: float = 30.0) -> str:
    """Status string of a run, e.g. ``running`` or ``finished:completed``."""
    done = flwr(["ls", connection, "--run-id", str(run_id), "--format", "json"],
                flwr_home=flwr_home, timeout=timeout)
    runs = _json_tail(done.stdout).get("runs", [])
    if not runs:
        raise FedcondenseError(f"run {run_id} not found on connection '{connection}'.")
    return str(runs[0]["status"])


def wait_for_run(flwr_home: str | Path, connection: str, run_id: int, *, timeout: float,
                 poll: float = 1.0) -> str:
    """Poll until the run is ``finished:*``; return the final status."""
    deadline = time.monotonic() + timeout
    while True:
        status = run_status(flwr_home, connection, run_id)
        if status.startswith("finished"):
            return status
        if time.monotonic() > deadline:
            raise FedcondenseError(f"run {run_id} still '{status}' after {timeout:g} s.")
        time.sleep(poll)
