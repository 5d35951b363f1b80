"""Wire format of one federated request and one site reply, free of Flower.

A :class:`RoundMessage` is what the server broadcasts each round (or for the initialisation
request); a :class:`SiteReply` is what one site hands to secure aggregation. Both convert to
plain Python/numpy values only (``str``/``int``/``float``/``bytes`` and 1-D float64 arrays), so
the transport (Flower ``ConfigRecord`` / legacy ``FitIns.config`` / ``FitRes``) can carry them
without pickles: arrays travel as raw little-endian bytes described by a JSON header.

Scaling contract with SecAgg+
-----------------------------
SecAgg+ clips every value to ``±clipping_range`` *silently* and quantises to ``2**22`` levels.
The server therefore publishes a ``scale`` (a power of two, so dividing and multiplying back
is exact in float64) such that ``|v| / scale`` stays inside the clipping range for any
legitimate site vector ``v``. The site sends ``v / scale``; the server multiplies the
aggregate by ``scale``. A site whose ``max |v| / scale`` exceeds ``clipping_range`` either
clips itself *and says so* (``overflow_policy="flag"``: one plaintext boolean per site and
round, a post-processing of the already noised vector) or refuses to answer
(``overflow_policy="refuse"``: the site drops out of that round).

Every mismatch (protocol version, schema hash, malformed field) raises a
:class:`ProtocolError` subclass with a one-line message naming both sides' values.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping, Union

import numpy as np

from ..errors import FedcondenseError

PROTOCOL_VERSION = "fedcondense-transport/1"
"""Bumped whenever a field of :class:`RoundMessage` or :class:`SiteReply` changes meaning."""

HEADER_KEY = "fc.header"
ARRAY_PREFIX = "fc.array."
REPLY_PREFIX = "fc."
RequestKind = Literal["round", "init"]
OverflowPolicy = Literal["flag", "refuse"]
ConfigValue = Union[str, int, float, bool, bytes]
"""A value both a Flower ``ConfigRecord`` and a legacy ``FitIns.config`` accept."""

_ALLOWED_DTYPES = {"float64": "<f8", "int64": "<i8"}  # wire dtypes (little-endian)
_NATIVE = {"float64": np.float64, "int64": np.int64}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class ProtocolError(FedcondenseError):
    """A message that cannot be accepted (malformed, wrong version or wrong schema)."""


class VersionMismatchError(ProtocolError):
    """The two parties speak different protocol versions."""


class SchemaMismatchError(ProtocolError):
    """The two parties hold different consortium schemas."""


class ReplyRangeError(ProtocolError):
    """A site vector does not fit the SecAgg+ range (non-finite, or overflow with "refuse")."""


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ProtocolError(f"malformed fedcondense message: {what}.")


def _short(h: str) -> str:
    return h[:16] if len(h) > 16 else h


def check_version(received: str, expected: str = PROTOCOL_VERSION, *, side: str = "site") -> None:
    """Raise :class:`VersionMismatchError` naming both versions when they differ."""
    if received != expected:
        raise VersionMismatchError(
            f"protocol version mismatch: the {side} speaks {expected!r} but received "
            f"{received!r}; install the same fedcondense release on the server and every site."
        )


def check_schema(received: str, expected: str, *, side: str = "site") -> None:
    """Raise :class:`SchemaMismatchError` naming both schema hashes when they differ."""
    if received != expected:
        raise SchemaMismatchError(
            f"schema hash mismatch: the {side}'s schema is {_short(expected)}… but the "
            f"message carries {_short(received)}…; every party must use the same consortium "
            f"schema file (compare `sha256` of the canonical schema)."
        )


def pow2_scale(bound: float, clipping_range: float, headroom: float = 0.5) -> float:
    """Smallest power of two ``s`` with ``bound / s <= headroom * clipping_range``.

    Parameters
    ----------
    bound : float
        Public bound on ``max_p |v_p|`` of any legitimate site vector (e.g.
        ``clip_norm * max_site_records + 8 * noise_std``).
    clipping_range : float
        SecAgg+ clipping range.
    headroom : float
        Fraction of the clipping range the bound may use (margin against overflow).

    Returns
    -------
    float
        A power of two, so ``(v / s) * s == v`` exactly in float64.
    """
    if not (bound > 0 and math.isfinite(bound)):
        raise ProtocolError(f"reply bound must be positive and finite, got {bound!r}.")
    if not (0 < headroom <= 1) or not clipping_range > 0:
        raise ProtocolError("headroom must be in (0, 1] and clipping_range positive.")
    return float(2.0 ** math.ceil(math.log2(bound / (headroom * clipping_range))))


def _encode_array(name: str, arr: np.ndarray) -> tuple[dict[str, Any], bytes]:
    _require(bool(_NAME.match(name)), f"array name {name!r} is not an identifier")
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        kind = "float64"
    elif a.dtype.kind in "iub":
        kind = "int64"
    else:
        raise ProtocolError(f"malformed fedcondense message: array {name!r} has unsupported "
                            f"dtype {a.dtype}.")
    data = np.ascontiguousarray(a, dtype=np.dtype(_ALLOWED_DTYPES[kind]))
    if kind == "float64":
        _require(bool(np.all(np.isfinite(data))), f"array {name!r} has non-finite values")
    return {"dtype": kind, "shape": list(data.shape)}, data.tobytes()


def _decode_array(name: str, meta: Any, raw: Any) -> np.ndarray:
    _require(isinstance(meta, dict) and isinstance(raw, bytes), f"array {name!r} missing")
    dtype = meta.get("dtype")
    shape = meta.get("shape")
    _require(dtype in _ALLOWED_DTYPES, f"array {name!r} has dtype {dtype!r}")
    _require(isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape),
             f"array {name!r} has shape {shape!r}")
    n = int(np.prod(shape)) if shape else 1
    _require(len(raw) == 8 * n, f"array {name!r} has {len(raw)} bytes for shape {shape}")
    out = np.frombuffer(raw, dtype=np.dtype(_ALLOWED_DTYPES[dtype]))
    out = out.astype(_NATIVE[dtype]).reshape(shape)
    if dtype == "float64":
        _require(bool(np.all(np.isfinite(out))), f"array {name!r} has non-finite values")
    return out


@dataclass(frozen=True)
class RoundMessage:
    """One request broadcast to every site.

    Parameters
    ----------
    schema_hash : str
        SHA-256 of the consortium schema (:meth:`Schema.hash`).
    run_id : str
        Identifier of the federated run (public).
    round_index : int
        Round number (``0`` for the initialisation request).
    round_seed : int
        Public seed of the round (directions are regenerated from it), ``0 <= seed < 2**63``.
    reply_dim : int
        Length P of the vector every site must return.
    scale : float
        Public divisor: the site sends ``v / scale``; a power of two (see :func:`pow2_scale`).
    noise_std : float
        Gaussian noise std this site adds per coordinate (before scaling).
    kind : {"round", "init"}
        Which computation the site performs.
    arrays : dict of str to ndarray
        Public payload, e.g. the synthetic set ``{"Z": float64 (m, D), "targets": int64 (m,)}``.
    hyper : dict
        JSON-serialisable public hyper-parameters (directions, mu, clip_norm, sample rate(s),
        families, noise mode, ...). Interpreted by the site handler, not by the transport.
    secure : bool
        Whether the reply goes through SecAgg+ (range check and clipping apply only then).
    clipping_range : float
        SecAgg+ clipping range (public).
    weight : int
        ``num_examples`` every site must report; equals the server's ``max_weight`` so the
        SecAgg+ weighted mean times the number of contributors is the sum.
    overflow_policy : {"flag", "refuse"}
        What a site does when ``max|v|/scale > clipping_range``.
    attempt : int
        0 for the first delivery of this round, 1, 2, ... for retries.
    protocol_version : str
        Defaults to :data:`PROTOCOL_VERSION`.
    """

    schema_hash: str
    run_id: str
    round_index: int
    round_seed: int
    reply_dim: int
    scale: float = 1.0
    noise_std: float = 0.0
    kind: RequestKind = "round"
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    hyper: Mapping[str, Any] = field(default_factory=dict)
    secure: bool = True
    clipping_range: float = 8.0
    weight: int = 1
    overflow_policy: OverflowPolicy = "flag"
    attempt: int = 0
    protocol_version: str = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise :class:`ProtocolError` with a one-line message."""
        _require(isinstance(self.schema_hash, str) and len(self.schema_hash) > 0,
                 "schema_hash must be a non-empty string")
        _require(isinstance(self.run_id, str), "run_id must be a string")
        for name in ("round_index", "round_seed", "reply_dim", "weight", "attempt"):
            v = getattr(self, name)
            _require(isinstance(v, int) and not isinstance(v, bool), f"{name} must be an int")
        _require(self.round_index >= 0, "round_index must be >= 0")
        _require(0 <= self.round_seed < 2**63, "round_seed must be in [0, 2**63)")
        _require(1 <= self.reply_dim <= 1_000_000, "reply_dim must be in [1, 1e6]")
        _require(self.weight >= 1 and self.attempt >= 0, "weight >= 1 and attempt >= 0")
        for name in ("scale", "clipping_range"):
            v = getattr(self, name)
            _require(isinstance(v, float) and math.isfinite(v) and v > 0,
                     f"{name} must be a positive finite float")
        _require(isinstance(self.noise_std, float) and math.isfinite(self.noise_std)
                 and self.noise_std >= 0, "noise_std must be a finite float >= 0")
        _require(self.kind in ("round", "init"), f"kind {self.kind!r} is not 'round'/'init'")
        _require(self.overflow_policy in ("flag", "refuse"),
                 f"overflow_policy {self.overflow_policy!r} is not 'flag'/'refuse'")
        _require(isinstance(self.secure, bool), "secure must be a bool")
        for name, arr in self.arrays.items():
            _encode_array(name, arr)
        try:
            json.dumps(dict(self.hyper), allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed fedcondense message: hyper is not JSON: {exc}.")

    def with_attempt(self, attempt: int) -> "RoundMessage":
        """The same request, marked as retry number ``attempt``."""
        return replace(self, attempt=attempt)

    def to_config(self) -> dict[str, ConfigValue]:
        """Flat ``str -> str|int|float|bytes`` mapping (a ``ConfigRecord`` / ``FitIns.config``)."""
        manifest: dict[str, Any] = {}
        out: dict[str, ConfigValue] = {}
        for name, arr in self.arrays.items():
            meta, raw = _encode_array(name, arr)
            manifest[name] = meta
            out[ARRAY_PREFIX + name] = raw
        header = {
            "protocol_version": self.protocol_version, "schema_hash": self.schema_hash,
            "run_id": self.run_id, "round_index": self.round_index,
            "round_seed": self.round_seed, "reply_dim": self.reply_dim, "scale": self.scale,
            "noise_std": self.noise_std, "kind": self.kind, "secure": self.secure,
            "clipping_range": self.clipping_range, "weight": self.weight,
            "overflow_policy": self.overflow_policy, "attempt": self.attempt,
            "hyper": dict(self.hyper), "arrays": manifest,
        }
        out[HEADER_KEY] = json.dumps(header, allow_nan=False, sort_keys=True)
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, expected_schema_hash: str | None = None,
                    expected_version: str = PROTOCOL_VERSION) -> "RoundMessage":
        """Parse and validate; version is checked first, then the schema hash.

        Raises
        ------
        VersionMismatchError, SchemaMismatchError, ProtocolError
        """
        raw = config.get(HEADER_KEY)
        if not isinstance(raw, str):
            raise ProtocolError(f"malformed fedcondense message: missing {HEADER_KEY!r} entry.")
        try:
            header = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"malformed fedcondense message: header is not JSON ({exc}).")
        _require(isinstance(header, dict), "header is not a JSON object")
        check_version(str(header.get("protocol_version")), expected_version)
        if expected_schema_hash is not None:
            check_schema(str(header.get("schema_hash")), expected_schema_hash)
        manifest = header.get("arrays", {})
        _require(isinstance(manifest, dict), "array manifest is not an object")
        arrays = {n: _decode_array(n, m, config.get(ARRAY_PREFIX + n)) for n, m in manifest.items()}
        keys = ("schema_hash", "run_id", "round_index", "round_seed", "reply_dim", "scale",
                "noise_std", "kind", "secure", "clipping_range", "weight", "overflow_policy",
                "attempt", "hyper", "protocol_version")
        missing = [k for k in keys if k not in header]
        _require(not missing, f"header lacks {', '.join(missing)}")
        kw = {k: header[k] for k in keys}
        for k in ("scale", "noise_std", "clipping_range"):
            _require(isinstance(kw[k], (int, float)) and not isinstance(kw[k], bool),
                     f"{k} must be a number")
            kw[k] = float(kw[k])
        _require(isinstance(kw["hyper"], dict), "hyper must be an object")
        return cls(arrays=arrays, **kw)
