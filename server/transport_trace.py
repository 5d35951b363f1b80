"""Flower plumbing under the secure-sum driver: a tracing Grid and a patched SecAgg+ workflow.

* :class:`TracingGrid` wraps any Flower ``Grid`` and records, for every ``send_and_receive``,
  the protocol stage, the node ids sent to, those that answered, and each failure's one-line
  reason (the text after :data:`fedcondense.protocol.wire.wire_names.ERROR_MARK`). The driver uses it to
  know who was *sent* the round payload (SecAgg+ stage ``collect_masked_vectors``) and who
  dropped where — ``SecAggPlusWorkflow`` keeps that in a local variable. With
  ``poll_interval`` it pushes and polls for replies itself (a deployed coordinator uses
  0.2 s instead of Flower's fixed 3 s between pulls).
* :class:`RobustSecAggPlusWorkflow` fixes the Flower 1.41 behaviour where a node lost in
  stage 0 (setup) or 1 (share keys) stays in ``sampled_node_ids`` and in every neighbour set:
  at unmask its neighbours are asked for key shares they never received (``KeyError`` in
  ``secaggplus_mod._unmask``) and the whole round fails. Such a node never exchanged shares and
  never entered anyone's masks, so it is simply removed from the protocol after stage 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.proto.node_pb2 import NodeInfo  # pylint: disable=no-name-in-module
from flwr.server import LegacyContext
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp.grid import Grid
from flwr.supercore.run import Run

from ..protocol.wire.wire_names import ERROR_MARK
from .grid_pulls import bounded_pulls

STAGE_PAYLOAD = "collect_masked_vectors"
"""SecAgg+ stage whose message carries the round payload (FitIns) to the sites."""
STAGE_ORDER = ("hello", "setup", "share_keys", "collect_masked_vectors", "unmask", "plain")


def error_line(reason: str) -> str:
    """The site's sanitised one-line error out of a Flower error reason."""
    i = reason.find(ERROR_MARK)
    if i < 0:
        return " ".join(reason.split())[:300]
    text = reason[i + len(ERROR_MARK):]
    for stop in ("\n", "'>", "\\n"):
        j = text.find(stop)
        if j >= 0:
            text = text[:j]
    return text.strip()


@dataclass
class Exchange:
    """One ``send_and_receive`` call."""

    stage: str
    sent: set[int]
    ok: set[int]
    errors: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def lost(self) -> set[int]:
        """Nodes that were sent a message but returned no successful reply."""
        return self.sent - self.ok


def _stage_of(messages: list[Message], default: str) -> str:
    for m in messages:
        rec = m.content.config_records.get(RECORD_KEY_CONFIGS)
        if rec is not None and Key.STAGE in rec:
            return str(rec[Key.STAGE])
    return default


class TracingGrid(Grid):
    """Delegating ``Grid`` that records every exchange in :attr:`log`."""

    def __init__(self, inner: Grid, poll_interval: float | None = None) -> None:
        self.inner = inner
        self.log: list[Exchange] = []
        self.default_stage = "plain"
        self.poll_interval = poll_interval

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.inner.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        msgs = list(messages)
        stage = _stage_of(msgs, self.default_stage)
        sent = {m.metadata.dst_node_id for m in msgs}
        t0 = time.perf_counter()
        unfinished: dict[int, str] = {}
        if self.poll_interval is None:
            replies = list(self.inner.send_and_receive(msgs, timeout=timeout))
        else:
            replies, unfinished = self._push_and_poll(msgs, timeout)
        ex = Exchange(stage, sent, set(), errors=unfinished,
                      seconds=time.perf_counter() - t0)
        for r in replies:
            nid = r.metadata.src_node_id
            if r.has_error():
                ex.errors[nid] = error_line(r.error.reason or "")
            else:
                ex.ok.add(nid)
        for nid in ex.lost - set(ex.errors):
            ex.errors[nid] = f"no reply within the {timeout} s timeout"
        self.log.append(ex)
        return replies

    def _push_and_poll(self, msgs: list[Message],
                       timeout: float | None) -> tuple[list[Message], dict[int, str]]:
        """``send_and_receive`` polling every :attr:`poll_interval` s for replies (Flower's
        deployment grid sleeps 3 s between pulls, i.e. up to 3 s per SecAgg+ stage).

        A reply whose contents never finish uploading (its site was killed mid-upload) blocks
        a pull until the stage deadline at most (:func:`bounded_pulls`); one last short pull
        after the deadline still collects the replies that arrived meanwhile. Flower turns
        the unfinished reply into an error reply from the coordinator's own node; it is
        dropped here and its reason returned for the site it was meant to come from
        (the second value: node id → reason).
        """
        assert self.poll_interval is not None
        ids = list(self.inner.push_messages(msgs))
        node_of = {mid: m.metadata.dst_node_id for mid, m in zip(ids, msgs, strict=True)}
        pending = set(ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        unfinished: dict[int, str] = {}
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            final = left is not None and left <= 0
            with bounded_pulls(left):  # a half-uploaded reply must not outlast the deadline
                got = list(self.inner.pull_messages(pending))
            for r in got:
                pending.discard(r.metadata.reply_to_message_id)
                nid = node_of.get(r.metadata.reply_to_message_id)
                if r.has_error() and nid is not None and r.metadata.src_node_id != nid:
                    unfinished[nid] = error_line(r.error.reason or "")
                else:
                    replies.append(r)
            if final or not pending:
                break
            if deadline is None or time.monotonic() < deadline:
                time.sleep(self.poll_interval)
        return replies, unfinished


class RobustSecAggPlusWorkflow(SecAggPlusWorkflow):
    """``SecAggPlusWorkflow`` that tolerates nodes lost in stages 0 and 1 (see module doc)."""

    def share_keys_stage(self, grid: Grid, context: LegacyContext,
                         state: WorkflowState) -> bool:
        ok = super().share_keys_stage(grid, context, state)
        early = state.sampled_node_ids - state.active_node_ids
        if early:
            state.sampled_node_ids = set(state.active_node_ids)
            for nid in early:
                state.nid_to_neighbours.pop(nid, None)
                state.nid_to_publickeys.pop(nid, None)
            for nbrs in state.nid_to_neighbours.values():
                nbrs -= early
            return len(state.active_node_ids) >= max(state.threshold, 2) and \
                self._check_threshold(state)
        return ok
