"""A small in-process Flower ``Grid``: drive a ServerApp main and ClientApps without Ray.

Used by tests and quick runs: every message is deep-copied on the way in and out (the
SecAgg+ mod edits messages in place, a real transport would not share objects), delivered
to the destination node's ``ClientApp`` with that node's persistent ``Context``, and an
exception becomes an error reply exactly as Flower's simulation engine builds it. A
``drop(node_id, message) -> bool`` hook makes a node silently miss a message (a lost
connection: the server sees no reply, as after a timeout).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.proto.node_pb2 import NodeInfo  # pylint: disable=no-name-in-module
from flwr.serverapp.grid import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

DropFn = Callable[[int, Message], bool]


class LocalGrid(Grid):
    """In-process grid over ``n`` nodes that all run ``client_app``.

    Parameters
    ----------
    client_app : ClientApp
    node_configs : sequence of mappings
        One ``node_config`` per node (node ids are ``1001, 1002, ...``).
    drop : callable, optional
        ``drop(node_id, message)``: True to lose that message (no reply).
    run_id : int
    """

    def __init__(self, client_app: ClientApp, node_configs: Sequence[Mapping[str, Any]],
                 drop: DropFn | None = None, run_id: int = 4242) -> None:
        self.client_app = client_app
        self.drop = drop
        self._run = Run.create_empty(run_id=run_id)
        self.contexts: dict[int, Context] = {
            1001 + i: Context(run_id=run_id, node_id=1001 + i, node_config=dict(cfg),
                              state=RecordDict(), run_config={})
            for i, cfg in enumerate(node_configs)
        }
        self._replies: dict[str, Message] = {}
        TaskIdentity.task_id = 1
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID

    def server_context(self) -> Context:
        """A fresh server-side ``Context`` for the ServerApp main function."""
        return Context(run_id=self._run.run_id, node_id=SUPERLINK_NODE_ID, node_config={},
                       state=RecordDict(), run_config={})

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return Message(content=content, dst_node_id=dst_node_id, message_type=message_type,
                       group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def get_nodes(self) -> Iterable[NodeInfo]:
        return [NodeInfo(node_id=n) for n in self.contexts]

    def _deliver(self, msg: Message) -> Message | None:
        node = msg.metadata.dst_node_id
        if node not in self.contexts or (self.drop is not None and self.drop(node, msg)):
            return None
        try:
            reply = self.client_app(msg, self.contexts[node])
        except Exception as ex:  # noqa: BLE001 - mirrors the simulation engine
            reason = str(type(ex)) + ":<'" + str(ex) + "'>"
            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                            reply_to=msg)
        reply = copy.deepcopy(reply)
        reply.metadata.__dict__["_message_id"] = str(uuid4())
        return reply

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids: list[str] = []
        for m in messages:
            msg = copy.deepcopy(m)
            mid = str(uuid4())
            msg.metadata.__dict__["_message_id"] = mid
            msg.metadata.__dict__["_run_id"] = self._run.run_id
            ids.append(mid)
            reply = self._deliver(msg)
            if reply is not None:
                self._replies[mid] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return list(self.pull_messages(self.push_messages(messages)))
