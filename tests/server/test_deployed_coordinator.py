"""The deployed coordinator (the ServerApp behind ``flwr run deploy/app``), driven in-process.

No SuperLink: :class:`~fedcondense.simulations.runtime.local_grid.LocalGrid` delivers every message to
the real site ClientApp (:func:`fedcondense.client.site_app.site_client_app`, SecAgg+ mod,
each site's own ledger on disk) and :func:`~fedcondense.server.deployed_run.coordinate` runs
with the deployed app's own defaults. Session 1 loses site-3 after round 1 (it stops
answering: dropped, the run goes on with two) and then crashes mid-round 3 after site-1
answered; session 2 resumes (a new Flower run, site-3 back) and completes. Every site's ledger
must then hold exactly the requests ``privacy.json`` charges it.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Message
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

from fedcondense.client.site_app import site_client_app
from fedcondense.deploy.consortium import APP_DIR, declared_capacity, split_dataset
from fedcondense.protocol.privacy.ledger import PrivacyLedger
from fedcondense.server.deployed_run import coordinate
from fedcondense.simulations.runtime.local_grid import LocalGrid

APP_CONFIG = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
SITE3, SITE2 = 1003, 1002


class CoordinatorCrash(BaseException):
    """The coordinator machine dies (nothing in the coordinator may catch this)."""


def _stage(msg: Message) -> str:
    rec = msg.content.config_records.get(RECORD_KEY_CONFIGS) if msg.has_content() else None
    return str(rec[Key.STAGE]) if rec is not None and Key.STAGE in rec else ""


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("deployed")
    files, schema = split_dataset("heart_disease", 3, root / "data")
    nodes = [{"site-id": site, "data-path": str(path), "schema-path": str(schema),
              "ledger-path": str(root / site / "ledger.json"), "budget-epsilon": 10.0,
              "budget-delta": 1e-5, "round-log": str(root / site / "rounds.log"),
              "capacity": declared_capacity(path), "trust-aggregator": "true",
              "min-contributors": 2}
             for site, path in files.items()]
    for n in nodes:
        Path(n["ledger-path"]).parent.mkdir(parents=True)
        PrivacyLedger.create(n["ledger-path"], site=n["site-id"], epsilon_budget=10.0,
                             delta_budget=1e-5)
    return {"root": root, "schema": schema, "nodes": nodes}


def _run_config(c: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**APP_CONFIG, "schema-path": str(c["schema"]), "out-dir": str(c["root"] / "out"),
            "sites": 3, "rounds": 3, "directions": 8, "models": "logistic_regression",
            "stage-timeout": 1.0, "node-wait": 5.0, "reply-poll": 0.01, "seed": 11, **extra}


def test_dropout_crash_and_resume_in_process(consortium) -> None:
    app = site_client_app()
    payloads: dict[int, int] = {}

    def session1(node: int, msg: Message) -> bool:
        if _stage(msg) == "collect_masked_vectors":
            payloads[node] = payloads.get(node, 0) + 1
            # payloads: init, rounds 1, 2, 3; site-1 has already answered round 3
            if node == SITE2 and payloads[node] == 4:
                raise CoordinatorCrash
        return node == SITE3 and payloads.get(SITE2, 0) >= 2 and _stage(msg) == "setup"

    grid = LocalGrid(app, consortium["nodes"], drop=session1, run_id=501)
    ctx = grid.server_context()
    ctx.run_config.update(_run_config(consortium))
    with pytest.raises(CoordinatorCrash):
        coordinate(grid, ctx)
    out = consortium["root"] / "out"
    assert not (out / "synthetic.csv").exists() and (out / "checkpoint.npz").exists()
    lines = (out / "progress.log").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("init  ε ")  # init, rounds 1 and 2
    assert lines[2].startswith("round 2/3  ε ") and lines[2].endswith(" s")
    assert " 2/3 sites " in lines[2] and " 3/3 sites " in lines[1]  # site-3 dropped

    grid2 = LocalGrid(site_client_app(), consortium["nodes"], run_id=502)
    ctx2 = grid2.server_context()
    ctx2.run_config.update(_run_config(consortium, resume=True))
    coordinate(grid2, ctx2)

    run = json.loads((out / "run.json").read_text())
    privacy = json.loads((out / "privacy.json").read_text())
    assert run["status"] == "completed" and run["flower_runs"] == [501, 502]
    # the run seed fixes only public randomness: the sites' noise is their own
    assert privacy["private"] is True and privacy["noise_source"].startswith("each data holder")
    rounds = [t for t in run["transport"] if t["kind"] == "round"]
    assert "site-3" in rounds[1]["dropped"] and "site-3" not in rounds[0]["dropped"]
    assert set(run["stage_seconds_median"]) >= {"setup", "share_keys",
                                                "collect_masked_vectors", "unmask",
                                                "coordinator_build", "round"}
    # the deployed defaults: rows 0 -> simulate's 10 synthetic rows per class
    lines = (out / "synthetic.csv").read_text().strip().splitlines()
    assert len(lines) - 1 == 10 * 2
    # every site is charged exactly what its own ledger recorded for the run (nothing twice)
    for node in consortium["nodes"]:
        site = node["site-id"]
        keys = PrivacyLedger.open(node["ledger-path"]).keys_for_run(run["run_id"])
        asked = privacy["per_site_requests"][site]
        assert len(keys) == asked["init"] + asked["rounds"], (site, keys, asked)
    assert privacy["per_site_requests"]["site-1"]["rounds"] == 4  # round 3 answered twice
    assert privacy["per_site_requests"]["site-3"]["rounds"] == 2  # rounds 1 and 3 (resumed)
    assert (out / "flower.log").exists()
