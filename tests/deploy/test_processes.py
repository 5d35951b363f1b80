"""Process helpers without Flower: readiness waits, exits, and cleanup of detached children."""

from __future__ import annotations

import os
import sys
import time
import tomllib

import pytest

from fedcondense.deploy.flower_commands import (
    flower_env,
    format_node_config,
    free_port,
    port_open,
    supernode_command,
)
from fedcondense.deploy.processes import ManagedProcess, ProcessError, _alive

# A parent that prints a line, starts a child in a *new session* (as Flower starts
# flower-superexec) and sleeps; the child writes its pid and sleeps too.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         start_new_session=True)
print("child", child.pid, flush=True)
print("READY", flush=True)
time.sleep(60)
"""


def test_stop_kills_detached_descendants(tmp_path):
    proc = ManagedProcess("parent", [sys.executable, "-c", PARENT], tmp_path / "p.log")
    with proc:
        proc.wait_for_log("READY", timeout=20)
        child = int(proc.log_text().split("child ")[1].split()[0])
        assert _alive(child)
        assert proc.poll() is None
    assert proc.poll() is not None
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    assert proc.stop() is not None  # idempotent


def test_wait_for_log_reports_exit_and_timeout(tmp_path):
    quick = ManagedProcess("quick", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"],
                           tmp_path / "q.log")
    with quick, pytest.raises(ProcessError, match="exited with status 3.*bye"):
        quick.wait_for_log("never", timeout=20)
    slow = ManagedProcess("slow", [sys.executable, "-c", "import time; time.sleep(30)"],
                          tmp_path / "s.log")
    t0 = time.monotonic()
    with slow, pytest.raises(ProcessError, match="did not appear within 0.3 s"):
        slow.wait_for_log("never", timeout=0.3)
    assert time.monotonic() - t0 < 15


def test_node_config_toml_reads_back_in_flower(tmp_path):
    from flwr.common.config import parse_config_args

    cfg = {"site-id": "hospital-a", "data-path": '/srv/my data/"odd".csv',
           "budget-epsilon": 3.0, "budget-delta": 1e-5, "flag": True, "n": 2}
    path = tmp_path / "node.toml"
    path.write_text(format_node_config(cfg))
    assert tomllib.loads(path.read_text()) == cfg
    assert parse_config_args([str(path)]) == cfg  # exactly how flower-supernode reads it


def test_commands_and_env(tmp_path):
    argv = supernode_command(superlink="127.0.0.1:9", root_certificates="ca.crt",
                             private_key="node.key", node_config="n.toml", runtime_port=1234,
                             max_wait_time=5)
    joined = " ".join(argv)
    assert argv[0].endswith("flower-supernode") and "--insecure" not in argv
    for part in ("--root-certificates ca.crt", "--auth-supernode-private-key node.key",
                 "--node-config n.toml", "--port 1234", "--max-wait-time 5"):
        assert part in joined
    env = flower_env(tmp_path, base={"PATH": "/usr/bin"})
    assert env["FLWR_HOME"] == str(tmp_path) and env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    port = free_port()
    assert 0 < port < 65536 and not port_open("127.0.0.1", port)


def test_timestamped_log_without_colour(tmp_path):
    code = "print('\\x1b[92mINFO\\x1b[0m: hello', flush=True); import time; time.sleep(30)"
    proc = ManagedProcess("ts", [sys.executable, "-c", code], tmp_path / "t.log", timestamps=True)
    with proc:
        proc.wait_for_log("hello", timeout=20)
    line = (tmp_path / "t.log").read_text().splitlines()[0]
    assert line.endswith(" INFO: hello") and "\x1b" not in line
    assert line[:4].isdigit() and "T" in line.split()[0]
