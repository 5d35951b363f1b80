"""Real Flower 1.41 deployment on loopback: TLS + SuperNode authentication.

A SuperLink with ``--enable-supernode-auth`` and no runtime dependency installation; one site
whose key is registered (started through ``fedcondense site start``) connects and answers a
run of a throwaway app; a SuperNode with an unregistered key is refused. Bounded (< 90 s),
every process is stopped on any exit. Deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fedcondense.deploy import flwr_cli, pki
from fedcondense.deploy.flower_commands import (
    SUPERNODE_READY,
    SUPERNODE_REFUSED,
    flower_env,
    free_port,
)
from fedcondense.deploy.processes import (
    ManagedProcess,
    _alive,
    descendants,
    running_superlink,
    running_supernode,
)
from fedcondense.protocol.privacy.ledger import PrivacyLedger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "loopbackapp"
version = "1.0.0"
description = "throwaway loopback check"
license = "Apache-2.0"
dependencies = ["flwr>=1.41,<1.42"]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "fedcondense"

[tool.flwr.app.components]
serverapp = "loopbackapp.app:server"
clientapp = "loopbackapp.app:client"

[tool.flwr.app.config]
num-rounds = 1
min-nodes = 1
out = ""
"""
APP = '''\
import json, time
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

client = ClientApp()
server = ServerApp()


@client.query()
def query(msg: Message, context: Context) -> Message:
    site = str(context.node_config.get("site-id", "?"))
    return Message(RecordDict({"s": ConfigRecord({"site": site})}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    t0 = time.monotonic()
    while len(list(grid.get_node_ids())) < int(cfg["min-nodes"]):
        if time.monotonic() - t0 > 30:
            raise RuntimeError("not enough nodes")
        time.sleep(0.2)
    nodes = sorted(grid.get_node_ids())
    rounds = []
    for r in range(int(cfg["num-rounds"])):
        t = time.monotonic()
        msgs = [Message(RecordDict({"c": ConfigRecord({"round": r})}), dst_node_id=n,
                        message_type="query") for n in nodes]
        replies = list(grid.send_and_receive(msgs, timeout=30))
        rounds.append({"seconds": time.monotonic() - t,
                       "sites": sorted(str(m.content["s"]["site"]) for m in replies
                                       if m.has_content())})
    with open(str(cfg["out"]), "w") as fh:
        json.dump({"nodes": nodes, "rounds": rounds}, fh)
'''


def _write_app(root: Path) -> Path:
    app = root / "app"
    (app / "loopbackapp").mkdir(parents=True)
    (app / "pyproject.toml").write_text(APP_PYPROJECT)
    (app / "loopbackapp" / "__init__.py").write_text("")
    (app / "loopbackapp" / "app.py").write_text(APP)
    return app


def _write_site(root: Path, keys: pki.NodeKeyFiles, ca: Path, address: str) -> Path:
    site = root / "site"
    (site / "state").mkdir(parents=True)
    (site / "schema.json").write_text(json.dumps({
        "format": "fedcondense-schema/1", "name": "toy",
        "columns": [{"name": "age", "kind": "numeric", "min": 0, "max": 120}],
        "task": {"type": "classification", "target": "y", "classes": ["0", "1"]}}))
    (site / "data.csv").write_text("age,y\n" + "".join(f"{30 + i},{i % 2}\n" for i in range(20)))
    (site / "site.toml").write_text(textwrap.dedent(f"""\
        [site]
        id = "hospital-a"
        data = "data.csv"
        schema = "schema.json"
        ledger = "state/ledger.json"
        capacity = 100
        [privacy]
        epsilon-budget = 2.0
        delta-budget = 1e-5
        [coordinator]
        address = "{address}"
        root-certificates = "{ca}"
        private-key = "{keys.private_key}"
        [supernode]
        runtime-port = {free_port()}
        max-wait-time = 30
        """))
    return site / "site.toml"


def test_registered_site_runs_unregistered_key_refused(tmp_path):
    t_start = time.monotonic()
    keys = pki.init_consortium(tmp_path / "pki", ["127.0.0.1", "localhost"],
                               ["hospital-a", "rogue"])
    home = tmp_path / "flwr-home"
    port = free_port()
    address = f"127.0.0.1:{port}"
    app = _write_app(tmp_path)
    site_toml = _write_site(tmp_path, keys.sites["hospital-a"], keys.ca.cert, address)
    PrivacyLedger.create(site_toml.parent / "state" / "ledger.json", site="hospital-a",
                         epsilon_budget=2.0, delta_budget=1e-5)  # the operator's `site init`

    with running_superlink(host="127.0.0.1", port=port, ca_cert=keys.server.ca_cert,
                           cert=keys.server.cert, key=keys.server.key, flwr_home=home,
                           log_path=tmp_path / "superlink.log",
                           database=tmp_path / "state.db") as link:
        flwr_cli.write_connection(home, "consortium", address, keys.ca.cert)
        flwr_cli.register_supernode(home, "consortium", keys.sites["hospital-a"].public_key,
                                    name="hospital-a")
        # The throwaway app is not fedcondense's, which a warm site refuses to run: this site
        # uses Flower's own executor (a ClientApp process per message).
        site = ManagedProcess("site start", [sys.executable, "-m", "fedcondense.cli.main",
                                             "site", "start", "--config", str(site_toml)],
                              tmp_path / "site-start.out",
                              env={**flower_env(home), "FEDCONDENSE_SITE_EXECUTOR": "flower"})
        with site, running_supernode(name="rogue", superlink=address,
                                     root_certificates=keys.ca.cert,
                                     private_key=keys.sites["rogue"].private_key,
                                     log_path=tmp_path / "rogue.log", flwr_home=home,
                                     wait_ready=False) as rogue:
            # The unregistered key: the SuperNode exits, the SuperLink logs why.
            assert rogue.wait_exit(timeout=30) != 0
            assert SUPERNODE_REFUSED.search(rogue.log_text()), rogue.log_tail()
            link.wait_for_log("No SuperNode found with the given public key", timeout=5)
            assert "activate-node HTTP/1.1\" 412" in link.log_text()

            # The registered site (through `fedcondense site start`) connects.
            site.wait_for_log("connected to 127.0.0.1", timeout=40)
            log_file = site_toml.parent / "state" / "supernode.log"
            assert SUPERNODE_READY.search(log_file.read_text())
            assert (site_toml.parent / "state" / "ledger.json").is_file()

            t_run = time.monotonic()
            run_id = flwr_cli.submit_run(home, app, "consortium", run_config={
                "num-rounds": 1, "min-nodes": 1, "out": str(tmp_path / "result.json")})
            status = flwr_cli.wait_for_run(home, "consortium", run_id, timeout=45)
            assert status == "finished:completed", link.log_tail(20)
            result = json.loads((tmp_path / "result.json").read_text())
            assert [r["sites"] for r in result["rounds"]] == [["hospital-a"]]
            print(f"run {run_id}: {time.monotonic() - t_run:.1f} s, round "
                  f"{result['rounds'][0]['seconds']:.1f} s")

            tree = [site.pid, *descendants(site.pid)]
        # `site start` and its SuperNode (and their children) are gone.
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in tree)
    assert time.monotonic() - t_start < 90
