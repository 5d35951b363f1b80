"""Coordinator checkpoint/resume in the transport-free orchestrator.

Sites are driven directly with the protocol maths (seeded per site and round, so an
interrupted and an uninterrupted run see identical answers): a run stopped after round 2 and
resumed from its checkpoint ends bit-for-bit where the uninterrupted run ends, with the same
per-site charges (nothing charged twice).
"""

import numpy as np
import pandas as pd
import pytest

from fedcondense.protocol.condensation.condenser import CondenseConfig, make_families
from fedcondense.protocol.condensation.federation import answer_init, answer_round
from fedcondense.protocol.condensation.synthetic_set import SyntheticSet
from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.data.site_table import load_site_table
from fedcondense.protocol.errors import FedcondenseError
from fedcondense.protocol.privacy.dp_mechanism import noise_generator
from fedcondense.server.orchestrator import Orchestrator, SiteInfo
from fedcondense.simulations.evaluation.datasets import export_dataset
from fedcondense.simulations.evaluation.site_splits import split_sites

CFG = CondenseConfig(epsilon=2.0, rows=4, models=("logistic_regression",), rounds=4,
                     directions=6, sample_rate=0.5, seed=11)


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    export_dataset("heart_disease", d)
    schema = Schema.load(d / "heart_disease.schema.json")
    df = pd.read_csv(d / "heart_disease.csv")
    tables = {}
    for i, part in enumerate(split_sites(df, schema, 3, partition="iid", seed=0)):
        part.to_csv(d / f"s{i}.csv", index=False)
        tables[f"site-{i + 1}"] = load_site_table(d / f"s{i}.csv", schema)
    infos = [SiteInfo(k, t.n_rows, CFG.sample_rate) for k, t in tables.items()]
    return schema, tables, infos


def _step(orch: Orchestrator, schema, tables, families) -> None:
    """One request answered by every site (sums only), as the transport would deliver it."""
    sent = list(tables)
    if orch.needs_init():
        req = orch.init_request()
        total = sum(answer_init(t, schema, req.noise_std, noise_generator(1, party=i)[0])
                    for i, t in enumerate(tables.values()))
        assert orch.apply_init(total, sent, sent)
        return
    req = orch.round_request()
    syn = SyntheticSet.from_arrays(schema, req.synthetic)
    total = np.zeros(CFG.directions)
    for i, (site, t) in enumerate(tables.items()):
        rng = noise_generator(2, party=100 * req.round_index + i)[0]
        total += answer_round(t, syn, families, req.round_config, req.sample_rate_by_site[site],
                              req.noise_std, rng)[0]
    orch.apply_round(total, sent, sent)


def test_resume_equals_uninterrupted_and_charges_once(federation, tmp_path):
    schema, tables, infos = federation
    families = make_families(CFG, schema)
    full = Orchestrator(schema, CFG, infos, mode="distributed", threshold=2)
    while not full.finished():
        _step(full, schema, tables, families)

    first = Orchestrator(schema, CFG, infos, mode="distributed", threshold=2)
    _step(first, schema, tables, families)  # init
    for _ in range(2):
        _step(first, schema, tables, families)
    first.save(tmp_path / "ck.npz", extra={"run_id": "r1"})
    del first  # the coordinator "crashes"

    resumed = Orchestrator.resume(tmp_path / "ck.npz", schema, CFG, infos,
                                  mode="distributed", threshold=2)
    assert resumed.rounds_done == 2 and resumed.checkpoint_extra == {"run_id": "r1"}
    while not resumed.finished():
        _step(resumed, schema, tables, families)

    assert np.array_equal(resumed.synthetic.Z, full.synthetic.Z)
    assert resumed.privacy_report()["per_site"] == full.privacy_report()["per_site"]
    assert resumed.privacy_report()["per_site_requests"] == {
        s: {"init": 1, "rounds": 4, "rounds_contributed": 4} for s in tables}
    assert [h["round"] for h in resumed.history] == [1, 2, 3, 4]


def test_orphan_deliveries_are_charged_and_mismatch_refused(federation, tmp_path):
    schema, tables, infos = federation
    families = make_families(CFG, schema)
    orch = Orchestrator(schema, CFG, infos, mode="distributed", threshold=2)
    _step(orch, schema, tables, families)
    _step(orch, schema, tables, families)
    orch.save(tmp_path / "ck.npz")
    back = Orchestrator.resume(tmp_path / "ck.npz", schema, CFG, infos, threshold=2)
    eps_before = back.per_site_epsilon()["site-1"]
    back.charge_orphans("site-1", "round", 1)  # round 2 was delivered before the crash
    assert back.accounts["site-1"].round_requests == 2
    assert back.per_site_epsilon()["site-1"] > eps_before
    other = CondenseConfig(**{**CFG.__dict__, "rounds": 9})
    with pytest.raises(FedcondenseError, match="checkpoint's config differs"):
        Orchestrator.resume(tmp_path / "ck.npz", schema, other, infos, threshold=2)
    with pytest.raises(FedcondenseError, match="checkpoint's sites differs"):
        Orchestrator.resume(tmp_path / "ck.npz", schema, CFG, infos[:2], threshold=2)
