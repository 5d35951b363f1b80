"""A deployed run and a simulated run of the same consortium give the same release.

The deployed coordinator (:func:`~fedcondense.server.deployed_run.coordinate`, the ServerApp
behind ``flwr run deploy/app``) runs in-process over
:class:`~fedcondense.simulations.runtime.local_grid.LocalGrid` with the real site ClientApp and
SecAgg+; the simulated one is :func:`~fedcondense.simulations.runtime.federated_condense.run_federated`
on Flower's in-process grid. Same three site tables, same seed, ε = inf and every record in
every round (sampling rate 1), so nothing random is left at the sites but SecAgg+'s stochastic
rounding when it quantises each reply (Flower's ``quantize``, ~1e-5 of a coordinate's range
here): both coordinators must send the same requests (one message builder) and apply the same
sums, round for round, so the releases agree to that quantisation and differ from another
seed's release by orders of magnitude more.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd

from fedcondense.client.site_app import site_client_app
from fedcondense.deploy.consortium import APP_DIR, declared_capacity, split_dataset
from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.server.deployed_run import coordinate
from fedcondense.simulations.runtime.federated_condense import run_federated
from fedcondense.simulations.runtime.local_grid import LocalGrid

APP_CONFIG = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
SEED, ROUNDS, P = 11, 3, 8


def test_deployed_and_simulated_releases_agree_at_epsilon_inf(tmp_path) -> None:
    files, schema = split_dataset("heart_disease", 3, tmp_path / "data")
    nodes = [{"site-id": site, "data-path": str(path), "schema-path": str(schema),
              "capacity": declared_capacity(path), "round-log": str(tmp_path / f"{site}.log")}
             for site, path in files.items()]  # no ledger-path: a non-private study's sites
    grid = LocalGrid(site_client_app(), nodes, run_id=601)
    ctx = grid.server_context()
    out = tmp_path / "deployed"
    ctx.run_config.update({**APP_CONFIG, "schema-path": str(schema), "out-dir": str(out),
                           "sites": 3, "rounds": ROUNDS, "directions": P,
                           "models": "logistic_regression", "epsilon": math.inf,
                           "sample-rate": 1.0, "seed": SEED, "stage-timeout": 5.0,
                           "node-wait": 5.0, "reply-poll": 0.01})
    coordinate(grid, ctx)
    deployed = pd.read_csv(out / "synthetic.csv")

    config = CondenseConfig(epsilon=math.inf, delta=float(APP_CONFIG["delta"]), rounds=ROUNDS,
                            directions=P, models=("logistic_regression",), sample_rate=1.0,
                            seed=SEED, rows=10,  # the app's rows = 0: simulate's 10 per class
                            mu=float(APP_CONFIG.get("mu", 0.1)),
                            lr=float(APP_CONFIG.get("lr", 0.05)))
    fed = run_federated(list(files.values()), schema, config, mode="distributed",
                        secure=True, backend="local")
    simulated = fed.orchestrator.synthetic.decode()  # type: ignore[union-attr]

    assert list(deployed.columns) == list(simulated.columns)
    assert len(deployed) == len(simulated) == 20
    assert [h["round"] for h in fed.orchestrator.history] == list(range(1, ROUNDS + 1))
    num = deployed.select_dtypes("number").columns
    a, b = deployed[num].to_numpy(float), simulated[num].to_numpy(float)
    span = np.ptp(a, axis=0) + 1.0
    same = float(np.max(np.abs(a - b) / span))
    assert same < 1e-4, same
    # the comparison can tell releases apart: another seed gives another release
    other = run_federated(list(files.values()), schema, replace(config, seed=SEED + 1),
                          mode="distributed", secure=True, backend="local")
    moved = other.orchestrator.synthetic.decode()  # type: ignore[union-attr]
    apart = float(np.max(np.abs(a - moved[num].to_numpy(float)) / span))
    print(f"relative gap: deployed vs simulated {same:.2e}, vs another seed {apart:.2e}")
    assert apart > 100 * max(same, 1e-6), (same, apart)
