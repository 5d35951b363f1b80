"""``TracingGrid``'s own reply polling (the deployed coordinator's ``poll_interval`` path)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import pytest
from flwr.app import ConfigRecord, Message, Metadata, RecordDict
from flwr.app.error import Error
from flwr.app.message import make_message
from flwr.common.constant import ErrorCode
from flwr.supercore.constant import SYSTEM_MESSAGE_TYPE

from fedcondense.server.transport_trace import TracingGrid

COORDINATOR_NODE = 1


def _message(src: int, dst: int, kind: str, reply_to: str, **body: object) -> Message:
    meta = Metadata(run_id=0, message_id="", src_node_id=src, dst_node_id=dst,
                    message_type=kind, group_id="", ttl=60.0, reply_to_message_id=reply_to,
                    created_at=time.time())
    return make_message(metadata=meta, **body)  # type: ignore[arg-type]


class _LinkReplies:
    """A SuperLink's reply queue as ``HttpGrid`` sees it: each reply is handed out once.

    ``schedule`` maps a destination node to (seconds after the push when its reply is
    stored, whether its contents ever finish uploading). A reply whose upload never finishes
    blocks the pull that meets it for ``block_s`` (Flower's pull retrying until its
    ``max_time``) and comes back as Flower's MESSAGE_UNAVAILABLE error reply from the
    coordinator's own node — what ``HttpGrid.pull_messages`` does.
    """

    def __init__(self, schedule: dict[int, tuple[float, bool]], block_s: float) -> None:
        self.schedule, self.block_s = schedule, block_s
        self.sent: dict[str, Message] = {}
        self.t0 = 0.0

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        self.t0 = time.monotonic()
        ids = []
        for i, m in enumerate(messages):
            mid = f"m{i}"
            self.sent[mid] = m
            ids.append(mid)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        now, out = time.monotonic() - self.t0, []
        for mid in sorted(message_ids):
            ins = self.sent[mid]
            at, complete = self.schedule[ins.metadata.dst_node_id]
            if now < at:
                continue
            del self.sent[mid]
            node = ins.metadata.dst_node_id
            if complete:
                out.append(_message(node, COORDINATOR_NODE, "train", mid,
                                    content=RecordDict({"r": ConfigRecord({"n": 1})})))
            else:
                time.sleep(self.block_s)
                out.append(_message(COORDINATOR_NODE, COORDINATOR_NODE, SYSTEM_MESSAGE_TYPE, mid,
                                    error=Error(code=ErrorCode.MESSAGE_UNAVAILABLE,
                                                reason="Reply message objects are unavailable.")))
        return out


def _exchange(schedule: dict[int, tuple[float, bool]], block_s: float,
              timeout: float) -> tuple[TracingGrid, list[Message], float]:
    link = _LinkReplies(schedule, block_s)
    grid = TracingGrid(link, poll_interval=0.02)  # type: ignore[arg-type]
    msgs = [_message(COORDINATOR_NODE, n, "train", "", content=RecordDict()) for n in schedule]
    t0 = time.monotonic()
    replies = list(grid.send_and_receive(msgs, timeout=timeout))
    return grid, replies, time.monotonic() - t0


@pytest.mark.timeout(30)
def test_replies_stored_behind_a_half_uploaded_one_are_still_collected() -> None:
    # site 3 dies mid-upload first; sites 11 and 12 reply just after: the blocked pull eats
    # the stage, but the replies that arrived meanwhile must not be reported lost.
    grid, replies, wall = _exchange({3: (0.0, False), 11: (0.1, True), 12: (0.1, True)},
                                    block_s=1.0, timeout=0.8)
    ex = grid.log[-1]
    assert sorted(r.metadata.src_node_id for r in replies) == [11, 12]
    assert ex.ok == {11, 12} and ex.lost == {3}
    assert "unavailable" in ex.errors[3] and COORDINATOR_NODE not in ex.errors
    assert wall < 3.0


@pytest.mark.timeout(30)
def test_a_site_that_never_replies_is_lost_at_the_timeout() -> None:
    grid, replies, wall = _exchange({5: (0.0, True), 6: (99.0, True)}, block_s=0.0,
                                    timeout=0.5)
    assert [r.metadata.src_node_id for r in replies] == [5]
    assert grid.log[-1].errors == {6: "no reply within the 0.5 s timeout"}
    assert 0.5 <= wall < 2.0
