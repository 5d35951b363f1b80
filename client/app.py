"""The site side: a Flower ``ClientApp`` around an injected site computation.

``make_client_app(handler)`` returns a ``ClientApp`` that

* answers the server's hello (``query``) with its site id, protocol version and schema hash,
  and logs a refusal locally when they differ from the server's;
* on every ``train`` message parses the :class:`~fedcondense.protocol.wire.messages.RoundMessage`,
  checks protocol version and schema hash against its *own* schema file, refuses a plaintext
  request unless the site allows plaintext, calls ``handler(message, node_config)``, checks
  the vector against the SecAgg+ range (:func:`~fedcondense.protocol.wire.site_reply.make_reply`)
  and returns the scaled vector with weight ``message.weight``;
* runs ``secaggplus_mod`` for messages that carry a SecAgg+ stage (all of them in secure
  mode), so only the masked vector leaves the site (:func:`secagg_if_requested`).

Errors are logged in full at the site; what goes to the server is one sanitised line
(protocol errors verbatim — they hold only versions and hashes — and for anything else only
the exception type), because exception text may quote private data.

Site configuration (Flower ``node_config``; in simulation merged with ``site_configs[i]`` for
partition ``i``): ``site-id``, ``schema-path`` (or ``schema-hash``), ``allow-plaintext``
(``"true"`` to accept non-secure rounds), ``report-timing`` (default ``"false"``: the
handler's wall time stays at the site — it grows with the private Poisson batch size, a side
channel no ε covers; only one-machine simulations set ``"true"``), the trust policy
(:class:`~fedcondense.protocol.privacy.site_policy.SitePolicy`), plus anything the handler needs
(``data-path``, ``capacity``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
)
from flwr.compat.common.recorddict_compat import fitres_to_recorddict, recorddict_to_fitins

from ..protocol.errors import FedcondenseError
from ..protocol.privacy.site_policy import truthy
from ..protocol.wire.messages import (
    PROTOCOL_VERSION,
    ProtocolError,
    RoundMessage,
    SchemaMismatchError,
    VersionMismatchError,
    check_schema,
    check_version,
)
from ..protocol.wire.site_reply import make_reply
from ..protocol.wire.wire_names import ERROR_MARK, HELLO_RECORD

LOG = logging.getLogger("fedcondense.site")

SiteHandler = Callable[[RoundMessage, Mapping[str, Any]], np.ndarray]
"""``handler(message, node_config) -> raw P-vector`` (unscaled, float64, length reply_dim)."""
HelloInfo = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]
"""``hello_info(node_config, hello) -> extra public hello fields`` (str/int/float); ``hello``
is the server's hello record (protocol version, schema hash, run id, session)."""

_SCHEMA_HASHES: dict[str, str] = {}


class SiteFailure(FedcondenseError):
    """A site could not answer; the message is safe to send to the server."""


def site_config(node_config: Mapping[str, Any],
                site_configs: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The node's configuration, merged with ``site_configs[partition-id]`` in simulation."""
    cfg: dict[str, Any] = dict(node_config)
    pid = cfg.get("partition-id")
    if site_configs is not None and pid is not None:
        if not 0 <= int(pid) < len(site_configs):
            raise SiteFailure(f"no site configuration for simulation partition {pid}.")
        cfg.update(site_configs[int(pid)])
    if "site-id" not in cfg:
        if pid is None:
            raise SiteFailure("node config lacks 'site-id'; start the SuperNode with "
                              "--node-config \"site-id='...' schema-path='...'\".")
        cfg["site-id"] = f"site-{int(pid)}"
    return cfg


def own_schema_hash(cfg: Mapping[str, Any]) -> str:
    """The site's schema hash: ``schema-hash`` if given, else the hash of ``schema-path``."""
    if "schema-hash" in cfg:
        return str(cfg["schema-hash"])
    path = cfg.get("schema-path")
    if path is None:
        raise SiteFailure(f"site {cfg.get('site-id')}: node config lacks 'schema-path'.")
    key = str(path)
    if key not in _SCHEMA_HASHES:
        from ..protocol.data.schema import Schema

        _SCHEMA_HASHES[key] = Schema.load(key).hash()
    return _SCHEMA_HASHES[key]


def _safe_line(site: str, round_index: int | str, exc: BaseException) -> str:
    if isinstance(exc, (ProtocolError, SiteFailure)):
        return f"{ERROR_MARK}site {site} refused round {round_index}: {exc}"
    return (f"{ERROR_MARK}site {site} failed in round {round_index}: {type(exc).__name__} "
            f"(details in the site's log)")


def _check_secagg_setup(context: Context, message: RoundMessage) -> None:
    """The SecAgg+ setup this site received must use the message's range and weight.

    SecAgg+ clips at the ``clipping_range`` of its setup stage; the site's overflow check uses
    the message's. If they differed, values could still be clipped silently.
    """
    state = context.state.config_records.get(RECORD_KEY_STATE)
    if state is None:
        raise ProtocolError("secure round without a SecAgg+ setup at this site.")
    clip, weight = state.get("clipping_range"), state.get("max_weight")
    if clip != message.clipping_range or weight != float(message.weight):
        raise ProtocolError(
            f"SecAgg+ setup (clipping_range={clip!r}, max_weight={weight!r}) disagrees with the "
            f"round message (clipping_range={message.clipping_range}, weight={message.weight})."
        )
    plan = message.hyper.get("privacy")
    if isinstance(plan, Mapping) and plan.get("mode") == "distributed":
        # Distributed noise is private only in sums of >= t contributions: SecAgg+ must not
        # unmask fewer than the plan's threshold.
        secagg_t = state.get("threshold")
        if not isinstance(secagg_t, int) or secagg_t < int(plan.get("threshold", 0)):
            raise ProtocolError(
                f"SecAgg+ reconstruction threshold {secagg_t!r} is below the declared "
                f"distributed-noise threshold {plan.get('threshold')!r}.")


def secagg_if_requested(msg: Message, ctxt: Context, call_next: Any) -> Message:
    """Run ``secaggplus_mod`` for messages carrying a SecAgg+ stage, else pass through.

    Flower's ``secaggplus_mod`` raises ``KeyError('secaggplus_configs')`` on a plain ``train``
    message; this router lets one ``ClientApp`` serve both modes. Whether a site *accepts*
    a plaintext round is decided in ``train`` (``allow-plaintext``).
    """
    if msg.has_content() and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return cast(Message, call_next(msg, ctxt))


def make_client_app(handler: SiteHandler, *,
                    site_configs: Sequence[Mapping[str, Any]] | None = None,
                    extra_mods: Sequence[Mod] = (),
                    hello_info: HelloInfo | None = None) -> ClientApp:
    """Build the site ``ClientApp``.

    Parameters
    ----------
    handler : callable
        ``handler(message, node_config) -> np.ndarray``: the site maths. It receives the
        validated :class:`RoundMessage` and the merged node configuration; it must return
        the raw (unscaled) vector of length ``message.reply_dim``. Keep it light and
        picklable (the Ray simulation ships it to worker processes with every message): load
        site data from ``node_config["data-path"]`` inside it and cache per process.
    site_configs : sequence of mappings, optional
        Simulation only: per-partition configuration merged into ``node_config`` (by the
        first mod, so every later mod and the handler see ``site-id`` etc.).
    extra_mods : sequence of Flower mods
        Run after the merge and *before* ``secaggplus_mod`` (tests inject drop-outs here).
    hello_info : callable, optional
        ``hello_info(node_config, hello)``: extra public fields for the hello reply (a
        deployed site reports its record count and the ledger keys charged for the run).

    Returns
    -------
    ClientApp
    """
    def merge_site_config(msg: Message, ctxt: Context, call_next: Any) -> Message:
        # First mod: later mods, the SecAgg+ mod and the handler all see the merged config.
        if "site-id" not in ctxt.node_config or site_configs is not None:
            ctxt.node_config = site_config(ctxt.node_config, site_configs)
        return cast(Message, call_next(msg, ctxt))

    app = ClientApp(mods=[merge_site_config, *extra_mods, secagg_if_requested])

    @app.query()
    def hello(msg: Message, context: Context) -> Message:
        return _hello_reply(msg, dict(context.node_config), hello_info)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return _round_reply(msg, context, handler)

    return app


def _hello_reply(msg: Message, cfg: dict[str, Any], hello_info: HelloInfo | None) -> Message:
    """The site's hello: its id, protocol version and schema hash, accepted or refused."""
    site = str(cfg["site-id"])
    own_hash = own_schema_hash(cfg)
    rec = msg.content.config_records.get(HELLO_RECORD, ConfigRecord())
    error = ""
    try:
        check_version(str(rec.get("protocol_version")), PROTOCOL_VERSION)
        check_schema(str(rec.get("schema_hash")), own_hash)
    except (VersionMismatchError, SchemaMismatchError) as exc:
        LOG.error("site %s refuses the federation: %s", site, exc)
        error = _safe_line(site, 0, exc)
    fields: dict[str, Any] = {"site_id": site, "protocol_version": PROTOCOL_VERSION,
                              "schema_hash": own_hash, "accepted": not error, "error": error}
    if hello_info is not None and not error:
        try:
            fields.update(hello_info(cfg, dict(rec.items())))
        except Exception as exc:  # noqa: BLE001 - logged in full, sanitised line sent
            LOG.exception("site %s: hello failed", site)
            fields.update(accepted=False, error=_safe_line(site, 0, exc))
    return Message(RecordDict({HELLO_RECORD: ConfigRecord(fields)}), reply_to=msg)


def _checked_request(msg: Message, context: Context, cfg: Mapping[str, Any]) -> RoundMessage:
    """The round request, validated against the site's schema and its transport rules."""
    fitins = recorddict_to_fitins(msg.content, keep_input=True)
    message = RoundMessage.from_config(fitins.config, expected_schema_hash=own_schema_hash(cfg))
    via_secagg = RECORD_KEY_CONFIGS in msg.content.config_records
    if message.secure != via_secagg:
        raise ProtocolError(
            f"round {message.round_index} says secure={message.secure} but arrived "
            f"{'through' if via_secagg else 'outside'} secure aggregation."
        )
    if via_secagg:
        _check_secagg_setup(context, message)
    elif not truthy(cfg.get("allow-plaintext", "false")):
        raise ProtocolError(
            "plaintext aggregation requested but this site only answers through "
            "secure aggregation (set allow-plaintext='true' to permit it)."
        )
    return message


def _round_reply(msg: Message, context: Context, handler: SiteHandler) -> Message:
    """The site's answer to a round request (a scaled vector), or a sanitised failure."""
    cfg = dict(context.node_config)
    site = str(cfg["site-id"])
    round_index: int | str = msg.metadata.group_id
    try:
        message = _checked_request(msg, context, cfg)
        round_index = message.round_index
        t0 = time.perf_counter()
        vector = handler(message, cfg)
        elapsed = time.perf_counter() - t0
        if not truthy(cfg.get("report-timing", "false")):
            elapsed = -1.0  # "not reported"
        reply = make_reply(message, vector, site, elapsed)
    except Exception as exc:  # noqa: BLE001 - everything is logged, then sanitised
        if isinstance(exc, ProtocolError):
            LOG.error("site %s refused round %s: %s", site, round_index, exc)
        else:
            LOG.exception("site %s failed in round %s", site, round_index)
        raise SiteFailure(_safe_line(site, round_index, exc)) from None
    if reply.overflow:
        LOG.warning("site %s: round %s answer exceeded the secure-aggregation range; "
                    "clipped and flagged", site, round_index)
    fitres = FitRes(status=Status(Code.OK, "ok"),
                    parameters=ndarrays_to_parameters([reply.scaled]),
                    num_examples=message.weight, metrics=dict(reply.metrics()))
    return Message(fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)
