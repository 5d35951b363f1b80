"""Central ``condense``: the coordinator's loop with one local site — determinism, resume,
refusals, the public count and what the orchestrator charged."""

from pathlib import Path

import numpy as np
import pytest

from fedcondense.protocol.condensation.condenser import CondenseConfig
from fedcondense.protocol.data.site_table import load_site_table
from fedcondense.protocol.errors import FedcondenseError
from fedcondense.protocol.release.checkpoint import Checkpoint
from fedcondense.server.central_run import SITE, condense
from fedcondense.simulations.evaluation.datasets import load_dataset
from fedcondense.simulations.evaluation.site_splits import train_test_split_table
from fedcondense.simulations.evaluation.utility import as_table, utility

FAST = dict(rounds=4, directions=8, rows=5, models=("logistic_regression",), seed=3)


def test_fixed_seed_is_reproducible_and_seeds_differ(heart):
    schema, table = heart
    a = condense(table, schema, CondenseConfig(**FAST))
    b = condense(table, schema, CondenseConfig(**FAST))
    c = condense(table, schema, CondenseConfig(**{**FAST, "seed": 4}))
    assert np.array_equal(a.synthetic.Z, b.synthetic.Z)
    assert not np.array_equal(a.synthetic.Z, c.synthetic.Z)
    assert a.noise_source.startswith("seeded")


def test_resume_from_checkpoint_equals_uninterrupted_run(heart, tmp_path):
    schema, table = heart
    full = condense(table, schema, CondenseConfig(**FAST))
    ck = tmp_path / "state.npz"

    def crash_after_two(r, info):
        if r == 2:
            raise KeyboardInterrupt  # the process dies after round 2 was checkpointed

    with pytest.raises(KeyboardInterrupt):
        condense(table, schema, CondenseConfig(**FAST), progress=crash_after_two, checkpoint=ck)
    resumed = condense(table, schema, CondenseConfig(**FAST), checkpoint=ck, resume=True)
    assert np.array_equal(full.synthetic.Z, resumed.synthetic.Z)


def test_condensation_beats_its_own_initialisation():
    df, schema = load_dataset("breast_cancer")
    tr, te = train_test_split_table(df, schema, test_size=0.3, seed=0)
    tmp = Path(__import__("tempfile").mkdtemp())
    tr.to_csv(tmp / "tr.csv", index=False)
    te.to_csv(tmp / "te.csv", index=False)
    train, test = load_site_table(tmp / "tr.csv", schema), load_site_table(tmp / "te.csv", schema)
    cfg = dict(epsilon=4.0, rows=10, models=("logistic_regression",), directions=32, init="random",
               sample_rate=0.5, seed=0)
    scores = []
    for rounds in (1, 40):
        res = condense(train, schema, CondenseConfig(rounds=rounds, **cfg))
        out = tmp / f"syn{rounds}.csv"
        res.synthetic.decode().to_csv(out, index=False)
        syn = load_site_table(out, schema, min_rows=2)
        scores.append(utility(schema, "logistic_regression", as_table(syn), as_table(test))["auroc"])
    assert scores[1] > scores[0] + 0.05, scores


def test_a_run_reports_every_round_and_its_evaluations(heart, tmp_path):
    schema, table = heart
    seen: list[int] = []
    cfg = CondenseConfig(**{**FAST, "models": ("logistic_regression", "decision_tree")})
    res = condense(table, schema, cfg, progress=lambda t, row: seen.append(t),
                   checkpoint=tmp_path / "c.npz")
    assert seen == [1, 2, 3, 4] and [r["round"] for r in res.history] == seen
    assert res.function_evaluations == 2 * 8 * 2 * 4
    assert all(r["grad_norm"] > 0 and r["fit_s"] > 0 for r in res.history)
    assert res.plan.sigma > 0 and res.plan.sigma_init > 0
    saved = Checkpoint.load(tmp_path / "c.npz", schema)  # the coordinator's checkpoint
    # the DP initialisation's noisy count is the public count, never the exact one
    assert res.public_count == saved.meta["public_count"] != len(table.X)
    assert saved.round_index == 4 and saved.meta["mode"] == "central"
    assert saved.meta["accounts"][SITE] == {"site": SITE, "sample_rate": cfg.sample_rate,
                                            "init_requests": 1, "round_requests": 4,
                                            "rounds_contributed": 4}
    assert np.array_equal(saved.synthetic.Z, res.synthetic.Z)


def test_resume_with_other_settings_is_refused_in_one_line(heart, tmp_path):
    schema, table = heart
    ck = tmp_path / "c.npz"
    condense(table, schema, CondenseConfig(**{**FAST, "rounds": 2}), checkpoint=ck)
    with pytest.raises(FedcondenseError, match="config differs") as err:
        condense(table, schema, CondenseConfig(**{**FAST, "rounds": 2, "lr": 0.2}),
                 checkpoint=ck, resume=True)
    assert "\n" not in str(err.value)


def test_private_random_start_needs_a_declared_capacity(heart):
    schema, table = heart
    cfg = CondenseConfig(**{**FAST, "seed": None, "init": "random", "rounds": 1})
    with pytest.raises(FedcondenseError, match="--capacity"):
        condense(table, schema, cfg)
    with pytest.raises(FedcondenseError, match="positive"):
        condense(table, schema, cfg, capacity=0)
    res = condense(table, schema, cfg, capacity=1000)
    assert res.public_count == 1000.0 and res.noise_source.startswith("os-csprng")
