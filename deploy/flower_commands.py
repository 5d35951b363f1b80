"""Flower 1.41 SuperLink/SuperNode command lines, environment, node config and log patterns.

What :mod:`fedcondense.deploy.processes` starts and ``fedcondense site start`` prints.
Command lines (exactly what was verified on loopback with flwr 1.41.0)::

    flower-superlink --host H --port P --ssl-ca-certfile ca.crt --ssl-certfile server.crt \\
        --ssl-keyfile server.key --enable-supernode-auth \\
        --disable-runtime-dependency-installation --database state.db
    flower-supernode --superlink H:P --root-certificates ca.crt \\
        --auth-supernode-private-key node.key --node-config node-config.toml \\
        --host 127.0.0.1 --port RUNTIME_PORT
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Mapping, Sequence

from ..protocol.errors import FedcondenseError

#: Printed by the SuperLink (uvicorn) once it accepts connections.
SUPERLINK_READY = re.compile(r"Uvicorn running on https?://")
#: Printed by the SuperNode once the SuperLink has activated it (registered key).
SUPERNODE_READY = re.compile(r"SuperNode ID: (\d+)")
#: Printed by a SuperNode whose key the SuperLink does not know (not registered).
SUPERNODE_REFUSED = re.compile(r"Failed to activate SuperNode")
#: Printed by a SuperNode that cannot verify the SuperLink's certificate (wrong CA/SAN).
SUPERNODE_TLS_FAILED = re.compile(r"CERTIFICATE_VERIFY_FAILED|SSL/TLS handshake error")

NodeConfigValue = str | int | float | bool


# --------------------------------------------------------------------------- environment
def flower_env(flwr_home: str | Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for Flower processes: isolated ``FLWR_HOME``, no telemetry/update check."""
    env = dict(os.environ if base is None else base)
    env.update({"FLWR_HOME": str(flwr_home), "FLWR_TELEMETRY_ENABLED": "0",
                "FLWR_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1"})
    # SuperExec (starts the ServerApp / each ClientApp) polls for new tasks every 1 s by
    # default; 0.2 s shortens every SecAgg+ stage at a negligible CPU cost.
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    # Flower starts flower-superexec / flwr-clientapp by name: keep this venv first on PATH.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def flower_bin(name: str) -> str:
    """Path of a Flower console script, preferring the one next to this interpreter."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise FedcondenseError(f"{name}: not found; install flwr 1.41 into this environment.")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def format_node_config(config: Mapping[str, NodeConfigValue]) -> str:
    """Render a node config as TOML (one ``key = value`` per line), for ``--node-config``.

    Flower 1.41 reads a ``--node-config`` value ending in ``.toml`` as a TOML file, which
    avoids any quoting trouble with paths.
    """
    lines = []
    for key, value in config.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            raise FedcondenseError(f"node config key {key!r}: use letters, digits, '-' or '_'.")
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, (int, float)):
            rendered = repr(value)
        else:
            rendered = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- commands
def superlink_command(*, host: str, port: int, ca_cert: str | Path, cert: str | Path,
                      key: str | Path, database: str | Path | None = None,
                      enable_supernode_auth: bool = True,
                      extra: Sequence[str] = ()) -> list[str]:
    """argv of a TLS SuperLink with node authentication and no runtime dependency installs."""
    cmd = [flower_bin("flower-superlink"), "--host", host, "--port", str(port),
           "--ssl-ca-certfile", str(ca_cert), "--ssl-certfile", str(cert),
           "--ssl-keyfile", str(key), "--disable-runtime-dependency-installation"]
    if enable_supernode_auth:
        cmd.append("--enable-supernode-auth")
    if database is not None:
        cmd += ["--database", str(database)]
    return cmd + list(extra)


def supernode_command(*, superlink: str, root_certificates: str | Path,
                      private_key: str | Path, node_config: str | Path | None = None,
                      runtime_port: int = 9094, max_wait_time: float | None = None,
                      extra: Sequence[str] = ()) -> list[str]:
    """argv of a SuperNode dialling ``superlink`` (``host:port``) over TLS with its node key.

    ``node_config`` is a path to a TOML file (see :func:`format_node_config`) or a
    ``'k="v" k2=1'`` string. Runtime dependency installation stays off (Flower's default for
    SuperNodes). ``runtime_port`` is the SuperNode's local ClientApp API on 127.0.0.1.
    """
    cmd = [flower_bin("flower-supernode"), "--superlink", superlink,
           "--root-certificates", str(root_certificates),
           "--auth-supernode-private-key", str(private_key),
           "--host", "127.0.0.1", "--port", str(runtime_port)]
    if node_config is not None:
        cmd += ["--node-config", str(node_config)]
    if max_wait_time is not None:
        cmd += ["--max-wait-time", f"{max_wait_time:g}"]
    return cmd + list(extra)
