"""Wire format of requests and replies (no Flower involved)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedcondense.protocol.errors import FedcondenseError
from fedcondense.protocol.wire.messages import (
    ARRAY_PREFIX,
    HEADER_KEY,
    PROTOCOL_VERSION,
    ProtocolError,
    ReplyRangeError,
    RoundMessage,
    SchemaMismatchError,
    VersionMismatchError,
    pow2_scale,
)
from fedcondense.protocol.wire.site_reply import SiteReply, make_reply, quantisation_bound

HASH = "a" * 64


def message(**kw: object) -> RoundMessage:
    base: dict[str, object] = dict(
        schema_hash=HASH, run_id="run-1", round_index=3, round_seed=2**62 + 5, reply_dim=4,
        scale=2.0, noise_std=0.5, arrays={"Z": np.arange(6.0).reshape(2, 3) / 7,
                                           "targets": np.array([0, 1])},
        hyper={"directions": 4, "mu": 0.1, "families": ["logistic_regression"],
               "sample_rate_by_site": {"a": 0.25}})
    base.update(kw)
    return RoundMessage(**base)  # type: ignore[arg-type]


def test_roundtrip_is_exact_and_flat() -> None:
    m = message()
    cfg = m.to_config()
    assert all(isinstance(v, (str, int, float, bytes)) for v in cfg.values())
    back = RoundMessage.from_config(cfg, expected_schema_hash=HASH)
    assert back.arrays["Z"].dtype == np.float64 and back.arrays["targets"].dtype == np.int64
    assert np.array_equal(back.arrays["Z"], m.arrays["Z"])  # bit-exact
    assert np.array_equal(back.arrays["targets"], m.arrays["targets"])
    assert back.hyper == m.hyper and back.round_seed == m.round_seed
    assert (back.scale, back.noise_std, back.kind, back.attempt) == (2.0, 0.5, "round", 0)
    assert back.with_attempt(2).attempt == 2


def test_schema_mismatch_names_both_hashes() -> None:
    cfg = message().to_config()
    with pytest.raises(SchemaMismatchError) as err:
        RoundMessage.from_config(cfg, expected_schema_hash="b" * 64)
    text = str(err.value)
    assert "aaaaaaaaaaaaaaaa" in text and "bbbbbbbbbbbbbbbb" in text and "\n" not in text
    assert isinstance(err.value, FedcondenseError)


def test_version_mismatch_is_checked_first_and_names_both() -> None:
    cfg = message().to_config()
    header = json.loads(str(cfg[HEADER_KEY]))
    header["protocol_version"] = "fedcondense-transport/0"
    header["schema_hash"] = "c" * 64  # version must win over the schema check
    cfg[HEADER_KEY] = json.dumps(header)
    with pytest.raises(VersionMismatchError) as err:
        RoundMessage.from_config(cfg, expected_schema_hash=HASH)
    assert PROTOCOL_VERSION in str(err.value) and "fedcondense-transport/0" in str(err.value)


@pytest.mark.parametrize("change", [
    lambda c: c.pop(HEADER_KEY),
    lambda c: c.__setitem__(HEADER_KEY, "{not json"),
    lambda c: c.__setitem__(ARRAY_PREFIX + "Z", b"\x00" * 8),
    lambda c: c.pop(ARRAY_PREFIX + "targets"),
])
def test_malformed_config_is_refused(change: object) -> None:
    cfg = message().to_config()
    change(cfg)  # type: ignore[operator]
    with pytest.raises(ProtocolError):
        RoundMessage.from_config(cfg)


@pytest.mark.parametrize("kw", [
    {"reply_dim": 0}, {"scale": 0.0}, {"scale": float("inf")}, {"noise_std": -1.0},
    {"kind": "other"}, {"round_seed": 2**63}, {"arrays": {"Z": np.array([np.nan])}},
    {"arrays": {"bad name": np.zeros(1)}}, {"hyper": {"x": float("nan")}},
    {"overflow_policy": "ignore"}, {"round_index": True},
])
def test_invalid_fields_raise_one_line(kw: dict[str, object]) -> None:
    with pytest.raises(ProtocolError) as err:
        message(**kw)
    assert "\n" not in str(err.value)


def test_pow2_scale_is_exact_and_has_headroom() -> None:
    s = pow2_scale(bound=1000.0, clipping_range=8.0, headroom=0.5)
    assert s == 256.0 and 1000.0 / s <= 4.0
    v = np.random.default_rng(0).standard_normal(50) * 300
    assert np.array_equal((v / s) * s, v)


def test_reply_scales_and_reports_metrics() -> None:
    m = message(scale=4.0)
    v = np.array([1.0, -2.0, 3.0, 31.0])
    r = make_reply(m, v, "site-a", 0.25)
    assert np.array_equal(r.scaled * 4.0, v) and not r.overflow
    assert SiteReply.parse_metrics(r.metrics()) == ("site-a", False, 0.25)
    assert all(isinstance(x, (str, int, float)) for x in r.metrics().values())


def test_overflow_is_flagged_and_clipped_explicitly() -> None:
    m = message(scale=1.0, clipping_range=8.0)
    r = make_reply(m, np.array([1.0, 9.0, -20.0, 0.0]), "s")
    assert r.overflow and np.array_equal(r.scaled, [1.0, 8.0, -8.0, 0.0])
    assert SiteReply.parse_metrics(r.metrics())[1] is True
    # plaintext aggregation does not clip, so there is nothing to flag
    assert not make_reply(message(scale=1.0, secure=False), np.array([1e6, 0, 0, 0]), "s").overflow


def test_overflow_refuse_policy_raises() -> None:
    m = message(scale=1.0, overflow_policy="refuse")
    with pytest.raises(ReplyRangeError, match="refusing"):
        make_reply(m, np.array([0.0, 0.0, 100.0, 0.0]), "s")


@pytest.mark.parametrize("v", [np.zeros(3), np.array([0.0, np.nan, 0.0, 0.0])])
def test_bad_vectors_are_refused(v: np.ndarray) -> None:
    with pytest.raises(ReplyRangeError):
        make_reply(message(), v, "s")


def test_quantisation_bound_formula() -> None:
    # n sites, each < 1 level of 2c/Q, times the scale
    assert quantisation_bound(3, 8.0, 2.0, 2**22) == pytest.approx(3 * 16 * 2 / 2**22)
