"""The server's transport: broadcast a round, get back the (secure) sum of the site vectors.

:func:`run_rounds` runs inside a Flower ``ServerApp`` (simulation or deployment):

1. waits for the expected number of SuperNodes, then says *hello* to each (``query``): every
   site answers with its site id, protocol version and schema hash; any mismatch stops the
   run with a :class:`~fedcondense.protocol.wire.messages.ProtocolError` naming both values
   (before any site touches data);
2. for each round ``t`` calls ``make_round(t)``, stamps the transport fields (``secure``,
   ``clipping_range``, ``weight``, ``attempt``) and delivers it:

   * secure: ``SecAggPlusWorkflow`` (patched, see :mod:`.transport_trace`) with
     ``num_shares=1.0`` (all; an integer below the number of sites raises ``IndexError`` in
     the 1.41 client mod), ``reconstruction_threshold=min_sites``,
     ``max_weight == weight`` so the SecAgg+ mean × contributors = sum;
   * plain: one ``train`` message per site, replies summed in site-id order;

3. a failed secure attempt (no aggregate) is retried without the nodes that dropped at the
   earliest failing stage, at most ``max_attempts`` times; then
   ``on_sum(t, summed | None, n_contributors, info)``.

``info`` lists the sites *sent* the round payload (every attempt; what the accountant must
charge), how often (``charges``), those that *contributed*, those that dropped (with their
one-line errors), overflow flags, per-site compute time, wall time and framework overhead,
and the quantisation bound of the secure sum.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.compat.common.recorddict_compat import fitins_to_recorddict, recorddict_to_fitres
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp.grid import Grid

from ..protocol.wire.messages import (
    PROTOCOL_VERSION,
    ProtocolError,
    RoundMessage,
    SchemaMismatchError,
    VersionMismatchError,
    check_schema,
    check_version,
)
from ..protocol.wire.site_reply import quantisation_bound
from ..protocol.wire.wire_names import HELLO_RECORD
from .strategy import SumOutcome, SumStrategy, summarise
from .transport_trace import (
    STAGE_ORDER,
    STAGE_PAYLOAD,
    RobustSecAggPlusWorkflow,
    TracingGrid,
)

LOG = logging.getLogger("fedcondense.server")
MakeRound = Callable[[int], RoundMessage]
OnSum = Callable[[int, "np.ndarray | None", int, dict[str, Any]], None]


@dataclass(frozen=True)
class TransportConfig:
    """Public transport parameters (identical for every site).

    Parameters
    ----------
    expected_sites : int
        Number of sites (SuperNodes) the run waits for.
    secure_aggregation : bool
        SecAgg+ (default) or plaintext per-site replies summed by the server.
    min_sites : int, optional
        SecAgg+ reconstruction threshold = fewest contributors a secure round can survive
        with (>= 2). Default ``max(2, expected_sites - 1)``. Set it to the orchestrator's
        threshold when noise is calibrated to it.
    clipping_range, quantization_range, modulus_range : SecAgg+ quantisation parameters.
    weight : int
        ``num_examples`` every site reports and the SecAgg+ ``max_weight``.
    timeout : float, optional
        Seconds to wait for replies per exchange (``None`` waits forever).
    max_attempts : int
        Secure attempts per round before the round is given up.
    retry_after_delivery : bool
        Also retry when the failed attempt had already delivered the payload (the sites
        computed and must be charged again for the retry); False gives such a round up.
    node_wait : float
        Seconds to wait for ``expected_sites`` nodes to connect.
    """

    expected_sites: int
    secure_aggregation: bool = True
    min_sites: int | None = None
    clipping_range: float = 8.0
    quantization_range: int = 2**22
    modulus_range: int = 2**32
    weight: int = 1
    timeout: float | None = 600.0
    max_attempts: int = 3
    retry_after_delivery: bool = True
    node_wait: float = 120.0

    @property
    def threshold(self) -> int:
        """Effective minimum number of contributors."""
        return self.min_sites if self.min_sites is not None else max(2, self.expected_sites - 1)

    def validate(self) -> None:
        """Raise :class:`ProtocolError` on inconsistent settings."""
        n = self.expected_sites
        if n < 1:
            raise ProtocolError("a federation needs at least one site.")
        if self.secure_aggregation:
            if n < 2:
                raise ProtocolError("secure aggregation needs at least 2 sites; use "
                                    "--no-secure-aggregation for a single site.")
            if not 2 <= self.threshold <= n:
                raise ProtocolError(f"secure-aggregation threshold {self.threshold} must be "
                                    f"between 2 and the number of sites ({n}).")
            if n * self.quantization_range >= self.modulus_range:
                raise ProtocolError(f"{n} sites × quantization_range overflow the SecAgg+ "
                                    f"modulus {self.modulus_range}.")
        if self.max_attempts < 1 or self.weight < 1:
            raise ProtocolError("max_attempts and weight must be at least 1.")


@dataclass
class RunReport:
    """What :func:`run_rounds` returns: the node→site map and one ``info`` per round."""

    sites: dict[int, str] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    handshake_s: float = 0.0
    total_s: float = 0.0


def wait_for_nodes(grid: Grid, expected: int, patience: float) -> list[int]:
    """Node ids once ``expected`` nodes are connected (raise after ``patience`` s)."""
    deadline = time.monotonic() + patience
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected:
            return nodes
        if time.monotonic() > deadline:
            raise ProtocolError(f"only {len(nodes)} of {expected} sites connected within "
                                f"{patience:.0f} s.")
        time.sleep(0.2)


def handshake(grid: TracingGrid, nodes: list[int], schema_hash: str,
              timeout: float | None, *, run_id: str = "",
              records: dict[int, dict[str, Any]] | None = None,
              require_all: bool = True, session: int = 0) -> dict[int, str]:
    """Ask every node for its site id; check protocol version and schema hash both ways.

    ``run_id`` and the coordinator ``session`` travel with the hello (a deployed site
    reports its ledger keys for the run and refuses requests of earlier sessions);
    each node's full hello reply is stored in ``records`` when given. A site that did not
    accept the federation (``accepted`` false) stops the run with its one-line reason.
    With ``require_all`` false, unreachable nodes (no reply in time, or Flower's "node
    unavailable") are left out (a deployed coordinator then checks the threshold itself);
    a site's own refusal still stops the run.
    """
    hello = {"protocol_version": PROTOCOL_VERSION, "schema_hash": schema_hash,
             "run_id": run_id, "session": session}
    msgs = [Message(content=RecordDict({HELLO_RECORD: ConfigRecord(dict(hello))}),
                    dst_node_id=n, message_type=MessageType.QUERY, group_id="hello")
            for n in nodes]
    grid.default_stage = "hello"
    replies = grid.send_and_receive(msgs, timeout=timeout)
    ex = grid.log[-1]
    sites: dict[int, str] = {}
    problems: list[str] = [f"node {n}: {ex.errors[n]}" for n in sorted(ex.errors)
                           if require_all or ex.errors[n].startswith("site ")]
    for r in replies:
        if r.has_error():
            continue
        rec = r.content.config_records[HELLO_RECORD]
        site = str(rec["site_id"])
        try:
            check_version(str(rec["protocol_version"]), PROTOCOL_VERSION, side="server")
            check_schema(str(rec["schema_hash"]), schema_hash, side="server")
        except (VersionMismatchError, SchemaMismatchError) as exc:
            LOG.error("site %s refused: %s", site, exc)
            problems.append(f"site {site}: {exc}")
            continue
        if rec.get("accepted") is False:
            problems.append(str(rec.get("error") or f"site {site} did not accept"))
            continue
        sites[r.metadata.src_node_id] = site
        if records is not None:
            records[r.metadata.src_node_id] = dict(rec.items())
    if len(set(sites.values())) != len(sites):
        problems.append(f"duplicate site ids {sorted(sites.values())}")
    if problems:
        raise ProtocolError("federation refused: " + " | ".join(problems))
    return sites


def _culprits(log: list[Any]) -> tuple[str, set[int]]:
    """Stage and nodes that dropped first in a failed attempt."""
    for ex in sorted(log, key=lambda e: STAGE_ORDER.index(e.stage)
                     if e.stage in STAGE_ORDER else 99):
        if ex.lost:
            return ex.stage, ex.lost
    return "unknown", set()


def _secure_attempt(grid: TracingGrid, ctx: LegacyContext, strategy: SumStrategy,
                    message: RoundMessage, targets: set[int], cfg: TransportConfig,
                    ) -> SumOutcome | None:
    workflow = RobustSecAggPlusWorkflow(
        num_shares=1.0, reconstruction_threshold=min(cfg.threshold, len(targets)),
        max_weight=float(cfg.weight), clipping_range=cfg.clipping_range,
        quantization_range=cfg.quantization_range, modulus_range=cfg.modulus_range,
        timeout=cfg.timeout)
    ctx.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: message.round_index})
    ctx.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
    strategy.prepare(message, targets)
    try:
        workflow(grid, ctx)
    except Exception:  # noqa: BLE001 - a protocol failure is a failed attempt, not a crash
        LOG.exception("secure aggregation attempt raised")
        return None
    return strategy.take_outcome()


def _plain_attempt(grid: TracingGrid, strategy: SumStrategy, message: RoundMessage,
                   targets: set[int], cfg: TransportConfig) -> SumOutcome:
    strategy.prepare(message, targets)
    content = fitins_to_recorddict(strategy.fit_ins(), keep_input=True)
    msgs = [Message(content=RecordDict(dict(content.items())), dst_node_id=n,
                    message_type=MessageType.TRAIN, group_id=str(message.round_index))
            for n in sorted(targets)]
    grid.default_stage = "plain"
    replies = grid.send_and_receive(msgs, timeout=cfg.timeout)
    ex = grid.log[-1]
    results = []
    for r in replies:
        if r.has_error():
            continue
        nid = r.metadata.src_node_id
        try:
            res = recorddict_to_fitres(r.content, keep_input=False)
            item = (GridClientProxy(nid, grid, grid.run.run_id), res)
            summarise(message, [item])  # validates this reply alone
        except Exception as exc:  # noqa: BLE001 - a bad reply is that site's drop-out
            ex.ok.discard(nid)
            ex.errors[nid] = f"reply rejected by the server: {exc}"
            continue
        results.append(item)
    return summarise(message, results, len(msgs) - len(results))


def run_round(grid: TracingGrid, ctx: LegacyContext, strategy: SumStrategy,
              base: RoundMessage, sites: dict[int, str], cfg: TransportConfig,
              attempt_base: int = 0) -> tuple[SumOutcome | None, dict[str, Any]]:
    """Deliver one round (with retries); return the outcome and its ``info`` dict.

    Attempts are numbered from ``attempt_base`` (a resumed coordinator starts after the
    attempts an earlier session delivered, so no request key is ever reused).
    """
    t0 = time.perf_counter()
    targets = set(sites)
    attempts: list[dict[str, Any]] = []
    charges: dict[str, int] = {}
    errors: dict[str, str] = {}
    outcome: SumOutcome | None = None
    for attempt in range(cfg.max_attempts if cfg.secure_aggregation else 1):
        if cfg.secure_aggregation and len(targets) < cfg.threshold:
            break
        message = replace(base, secure=cfg.secure_aggregation, clipping_range=cfg.clipping_range,
                          weight=cfg.weight, attempt=attempt_base + attempt)
        mark = len(grid.log)
        a0 = time.perf_counter()
        if cfg.secure_aggregation:
            outcome = _secure_attempt(grid, ctx, strategy, message, targets, cfg)
        else:
            outcome = _plain_attempt(grid, strategy, message, targets, cfg)
        log = grid.log[mark:]
        delivered: set[int] = set()
        for ex in log:
            if ex.stage in (STAGE_PAYLOAD, "plain"):
                delivered |= ex.sent
            for nid, line in ex.errors.items():
                errors.setdefault(sites.get(nid, str(nid)), line)
        for nid in delivered:
            charges[sites[nid]] = charges.get(sites[nid], 0) + 1
        stage, lost = ("", set()) if outcome is not None else _culprits(log)
        attempts.append({"attempt": attempt, "targets": sorted(sites[n] for n in targets),
                         "sent": sorted(sites[n] for n in delivered),
                         "ok": outcome is not None, "failed_stage": stage,
                         "excluded_next": sorted(sites.get(n, str(n)) for n in lost),
                         "wall_s": time.perf_counter() - a0,
                         "stages_s": {ex.stage: ex.seconds for ex in log}})
        if outcome is not None or (delivered and not cfg.retry_after_delivery):
            break
        LOG.warning("round %d attempt %d failed at %s; dropped %s", base.round_index, attempt,
                    stage, sorted(sites.get(n, str(n)) for n in lost))
        targets -= lost
    wall = time.perf_counter() - t0
    contributed = sorted(outcome.contributors.values()) if outcome else []
    compute = outcome.compute_seconds if outcome else {}
    for site, line in sorted(errors.items()):
        LOG.warning("round %d: %s", base.round_index, line)
    if outcome and outcome.overflow:
        LOG.warning("round %d: sites %s overflowed the secure-aggregation range (clipped)",
                    base.round_index, outcome.overflow)
    info: dict[str, Any] = {
        "round": base.round_index, "kind": base.kind, "secure": cfg.secure_aggregation,
        "sent": sorted(charges), "charges": charges, "contributed": contributed,
        "dropped": sorted(set(sites.values()) - set(contributed)),
        "errors": {k: v for k, v in errors.items() if k not in contributed},
        "overflow": list(outcome.overflow) if outcome else [],
        "attempts": attempts, "site_compute_s": compute, "wall_s": wall,
        "overhead_s": wall - max([c for c in compute.values() if c == c] or [0.0]),
        "quantisation_bound": quantisation_bound(len(contributed), cfg.clipping_range,
                                                 base.scale, cfg.quantization_range)
        if cfg.secure_aggregation else 0.0,
    }
    return outcome, info


def run_rounds(grid: Grid, context: Context, *, rounds: int, make_round: MakeRound,
               on_sum: OnSum, config: TransportConfig, schema_hash: str) -> RunReport:
    """Run ``rounds`` rounds of broadcast → secure sum inside a ``ServerApp``.

    Parameters
    ----------
    grid, context : the ``ServerApp`` main function's arguments.
    rounds : int
        Number of requests; ``make_round`` is called with ``1 .. rounds``.
    make_round : callable
        ``make_round(t) -> RoundMessage`` (the maths side; its transport fields are
        overwritten from ``config``). Called once per round, after the previous ``on_sum``.
    on_sum : callable
        ``on_sum(t, summed, n_contributors, info)``; ``summed`` is ``None`` when no
        aggregate could be formed (the round is still charged to ``info["sent"]``).
    config : TransportConfig
    schema_hash : str
        The server's consortium schema hash (checked against every site).

    Returns
    -------
    RunReport
    """
    config.validate()
    t0 = time.perf_counter()
    tgrid = TracingGrid(grid)
    nodes = wait_for_nodes(tgrid, config.expected_sites, config.node_wait)
    sites = handshake(tgrid, nodes, schema_hash, config.timeout)
    report = RunReport(sites=dict(sites), handshake_s=time.perf_counter() - t0)
    manager = SimpleClientManager()
    for nid in sites:
        manager.register(GridClientProxy(nid, tgrid, tgrid.run.run_id))
    strategy = SumStrategy()
    ctx = LegacyContext(context, config=ServerConfig(num_rounds=rounds), strategy=strategy,
                        client_manager=manager)
    for t in range(1, rounds + 1):
        base = make_round(t)
        if base.schema_hash != schema_hash:
            raise SchemaMismatchError(f"make_round({t}) built a message for schema "
                                      f"{base.schema_hash[:16]}… but the run uses "
                                      f"{schema_hash[:16]}….")
        outcome, info = run_round(tgrid, ctx, strategy, base, sites, config)
        summed = outcome.summed if outcome is not None and outcome.contributors else None
        on_sum(t, summed, len(info["contributed"]), info)
        report.rounds.append(info)
    report.total_s = time.perf_counter() - t0
    return report
