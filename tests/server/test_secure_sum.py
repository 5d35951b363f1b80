"""Secure-sum transport through Flower's SecAgg+ workflow, driven in-process (no Ray).

The in-process :class:`LocalGrid` runs the real ``SecAggPlusWorkflow`` and the real
``secaggplus_mod`` (all four stages, masks, Shamir shares); only the message transport is
replaced. One Ray ``run_simulation`` test lives in tests/simulations/runtime/test_federated_run.py.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from fault_injection import StageFault

from fedcondense.protocol.wire.messages import ProtocolError
from fedcondense.server.secure_sum import TransportConfig
from fedcondense.simulations.runtime.federated_run import (
    DemoHandler,
    default_site_configs,
    demo_rounds,
    demo_vector,
    simulate_transport,
)

HASH = "f" * 64
DIM = 64


@pytest.fixture(autouse=True)
def _flower_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("FLWR_DISABLE_UPDATE_CHECK", "1")
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))


def run(n: int = 3, rounds: int = 2, *, secure: bool = True, handler: DemoHandler | None = None,
        mods: tuple[Any, ...] = (), min_sites: int | None = None, scale: float = 1.0,
        site_configs: list[dict[str, Any]] | None = None, **mk: Any,
        ) -> list[tuple[int, np.ndarray | None, int, dict[str, Any]]]:
    out: list[tuple[int, np.ndarray | None, int, dict[str, Any]]] = []
    make_round = demo_rounds(HASH, DIM, scale=scale, **mk)
    simulate_transport(handler or DemoHandler(), make_round,
                       lambda t, s, k, info: out.append((t, s, k, info)), rounds=rounds,
                       config=TransportConfig(n, secure_aggregation=secure, min_sites=min_sites),
                       schema_hash=HASH, backend="local", extra_mods=mods,
                       site_configs=site_configs)
    return out


def exact(t: int, sites: list[str], scale: float = 1.0) -> np.ndarray:
    seed = demo_rounds(HASH, DIM, scale=scale)(t).round_seed
    total = np.zeros(DIM)
    for s in sorted(sites):
        total = total + demo_vector(s, seed, DIM)
    return total


def test_secure_sum_matches_plain_sum_within_quantisation_bound() -> None:
    # bound per coordinate: n * 2 * clipping_range * scale / 2**22 = 3*16*2/4194304
    rows = run(3, rounds=3, scale=2.0)
    for t, summed, n, info in rows:
        assert n == 3 and info["contributed"] == ["site-1", "site-2", "site-3"]
        assert info["overflow"] == []
        bound = info["quantisation_bound"]
        assert bound == pytest.approx(3 * 2 * 8.0 * 2.0 / 2**22)
        err = np.max(np.abs(summed - exact(t, info["contributed"], 2.0)))
        assert err <= bound, (err, bound)
        assert err > 0  # it really went through the quantiser
        assert info["sent"] == info["contributed"] and info["dropped"] == []
        assert set(info["site_compute_s"]) == set(info["contributed"])
        assert info["wall_s"] >= info["overhead_s"] >= 0


def test_plain_mode_returns_the_exact_sum() -> None:
    for t, summed, n, info in run(3, rounds=2, secure=False, scale=0.25):
        assert n == 3 and not info["secure"] and info["quantisation_bound"] == 0.0
        assert np.array_equal(summed, exact(t, info["contributed"], 0.25))


def test_site_failing_in_one_round_is_reported_and_run_continues() -> None:
    rows = run(3, rounds=3, handler=DemoHandler(fail=(("site-2", 2),)))
    assert [r[2] for r in rows] == [3, 2, 3]
    t, summed, n, info = rows[1]
    assert info["contributed"] == ["site-1", "site-3"] and info["dropped"] == ["site-2"]
    # the payload reached site-2 (it computed and failed): it must be charged
    assert info["sent"] == ["site-1", "site-2", "site-3"] and info["charges"]["site-2"] == 1
    assert "RuntimeError" in info["errors"]["site-2"]
    assert "private detail" not in info["errors"]["site-2"]  # sanitised at the site
    assert np.max(np.abs(summed - exact(2, ["site-1", "site-3"]))) <= info["quantisation_bound"]


@pytest.mark.parametrize("stage", ["setup", "share_keys"])
def test_drop_in_stage_0_or_1_is_survived_in_one_attempt(stage: str) -> None:
    # Flower 1.41 alone fails the round (neighbours lack the dropped node's key shares);
    # the patched workflow removes the node and completes without a retry.
    rows = run(5, rounds=2, mods=(StageFault("site-4", 1, stage),), min_sites=3)
    t, summed, n, info = rows[0]
    assert n == 4 and info["dropped"] == ["site-4"] and len(info["attempts"]) == 1
    assert "site-4" not in info["sent"]  # it never received the round payload
    assert np.max(np.abs(summed - exact(1, info["contributed"]))) <= info["quantisation_bound"]
    assert rows[1][2] == 5


def test_unrecoverable_round_reports_none_and_run_continues() -> None:
    # every site is required (threshold 3 of 3): a drop makes the round impossible
    rows = run(3, rounds=2, handler=DemoHandler(fail=(("site-1", 1),)), min_sites=3)
    t, summed, n, info = rows[0]
    assert summed is None and n == 0 and info["contributed"] == []
    assert info["sent"] == ["site-1", "site-2", "site-3"]  # all charged conservatively
    assert rows[1][2] == 3


def test_overflow_is_flagged_not_silently_clipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fedcondense")
    rows = run(3, rounds=1, handler=DemoHandler(overflow=(("site-3", 1),)))
    t, summed, n, info = rows[0]
    assert info["overflow"] == ["site-3"] and n == 3
    assert any("overflowed" in r.getMessage() for r in caplog.records)


def test_overflow_refuse_policy_drops_the_site() -> None:
    rows = run(3, rounds=1, handler=DemoHandler(overflow=(("site-3", 1),)),
               overflow_policy="refuse")
    info = rows[0][3]
    assert info["dropped"] == ["site-3"] and "refusing" in info["errors"]["site-3"]


def test_schema_mismatch_refused_with_error_on_both_sides(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="fedcondense")
    cfgs = default_site_configs(3, HASH, allow_plaintext=False)
    cfgs[1]["schema-hash"] = "0" * 64
    with pytest.raises(ProtocolError) as err:
        run(3, rounds=1, site_configs=cfgs)
    text = str(err.value)
    assert "site-2" in text and "ffffffffffffffff" in text and "0000000000000000" in text
    site_logs = [r.getMessage() for r in caplog.records if r.name == "fedcondense.site"]
    assert any("site-2" in m and "ffffffffffffffff" in m and "0000000000000000" in m
               for m in site_logs)


def test_protocol_version_mismatch_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import fedcondense.client.app as client_app

    monkeypatch.setattr(client_app, "PROTOCOL_VERSION", "fedcondense-transport/0")
    with pytest.raises(ProtocolError, match="fedcondense-transport/0") as err:
        run(3, rounds=1)
    assert "fedcondense-transport/1" in str(err.value)


def test_site_refuses_plaintext_unless_allowed() -> None:
    cfgs = default_site_configs(3, HASH, allow_plaintext=True)
    cfgs[0]["allow-plaintext"] = "false"
    rows = run(3, rounds=1, secure=False, site_configs=cfgs)
    assert rows[0][3]["dropped"] == ["site-1"]
    assert "only answers through secure aggregation" in rows[0][3]["errors"]["site-1"]


def test_train_message_with_foreign_schema_is_refused_at_the_site(
        caplog: pytest.LogCaptureFixture) -> None:
    from flwr.app import Context, Message, RecordDict
    from flwr.app.message_type import MessageType
    from flwr.common import FitIns, Parameters
    from flwr.compat.common.recorddict_compat import fitins_to_recorddict

    from fedcondense.client.app import SiteFailure, make_client_app
    from fedcondense.simulations.runtime.local_grid import LocalGrid

    caplog.set_level(logging.ERROR, logger="fedcondense.site")
    app = make_client_app(DemoHandler())
    LocalGrid(app, [])  # sets the server task identity used to build messages
    m = demo_rounds("1" * 64, DIM)(1)
    fitins = FitIns(Parameters([], "numpy.ndarray"), dict(m.to_config()))
    msg = Message(content=fitins_to_recorddict(fitins, True), dst_node_id=7,
                  message_type=MessageType.TRAIN, group_id="1")
    ctx = Context(run_id=1, node_id=7, state=RecordDict(), run_config={},
                  node_config={"site-id": "h1", "schema-hash": HASH, "allow-plaintext": "true"})
    with pytest.raises(SiteFailure) as err:
        app(msg, ctx)
    assert "1111111111111111" in str(err.value) and "ffffffffffffffff" in str(err.value)
    assert any("h1" in r.getMessage() and "schema hash mismatch" in r.getMessage()
               for r in caplog.records)


def test_config_validation() -> None:
    with pytest.raises(ProtocolError, match="at least 2 sites"):
        TransportConfig(1).validate()
    with pytest.raises(ProtocolError, match="threshold"):
        TransportConfig(3, min_sites=4).validate()
    TransportConfig(1, secure_aggregation=False).validate()


def test_site_may_withhold_its_compute_time() -> None:
    cfgs = default_site_configs(3, HASH, allow_plaintext=False)
    cfgs[2]["report-timing"] = "false"
    info = run(3, rounds=1, site_configs=cfgs)[0][3]
    assert np.isnan(info["site_compute_s"]["site-3"])
    assert info["site_compute_s"]["site-1"] >= 0 and np.isfinite(info["overhead_s"])


def test_site_refuses_secagg_setup_that_disagrees_with_the_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a server whose SecAgg+ clipping range differs from the one announced in the round
    # message could clip silently: every site refuses, the round yields no sum.
    import fedcondense.server.secure_sum as secure_sum

    real = secure_sum.RobustSecAggPlusWorkflow

    def narrower(*args: Any, **kw: Any) -> Any:
        return real(*args, **{**kw, "clipping_range": 4.0})

    monkeypatch.setattr(secure_sum, "RobustSecAggPlusWorkflow", narrower)
    t, summed, n, info = run(3, rounds=1)[0]
    assert summed is None and n == 0
    assert all("disagrees with the round message" in e for e in info["errors"].values())


def test_failed_attempt_is_retried_without_the_dropped_site_and_charged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Flower 1.41's own workflow fails the whole round after a stage-0 drop (at unmask, the
    # neighbours are asked for key shares they never got); the driver retries without the
    # site. The survivors computed twice: both deliveries are charged.
    from flwr.server.workflow import SecAggPlusWorkflow

    import fedcondense.server.secure_sum as secure_sum

    monkeypatch.setattr(secure_sum, "RobustSecAggPlusWorkflow", SecAggPlusWorkflow)
    t, summed, n, info = run(3, rounds=1, mods=(StageFault("site-2", 1, "setup"),),
                             min_sites=2)[0]
    assert [a["ok"] for a in info["attempts"]] == [False, True]
    assert info["attempts"][0]["failed_stage"] == "setup"
    assert info["attempts"][0]["excluded_next"] == ["site-2"]
    assert info["contributed"] == ["site-1", "site-3"] and info["dropped"] == ["site-2"]
    assert info["charges"] == {"site-1": 2, "site-3": 2}
    assert np.max(np.abs(summed - exact(1, info["contributed"]))) <= info["quantisation_bound"]


def test_no_retry_after_delivery_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.server.workflow import SecAggPlusWorkflow

    import fedcondense.server.secure_sum as secure_sum

    monkeypatch.setattr(secure_sum, "RobustSecAggPlusWorkflow", SecAggPlusWorkflow)
    out: list[dict[str, Any]] = []
    simulate_transport(DemoHandler(), demo_rounds(HASH, DIM), lambda t, s, k, i: out.append(i),
                       rounds=1, schema_hash=HASH, backend="local",
                       config=TransportConfig(3, min_sites=2, retry_after_delivery=False),
                       extra_mods=(StageFault("site-2", 1, "setup"),))
    assert len(out[0]["attempts"]) == 1 and out[0]["contributed"] == []
    assert out[0]["charges"] == {"site-1": 1, "site-3": 1}
