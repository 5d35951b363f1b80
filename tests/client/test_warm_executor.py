"""The warm executor against a real SuperNode Runtime API (Flower's own FastAPI app, in-process).

A task is put into the SuperNode's state exactly as ``start_client_internal`` does when a
message arrives (run, FAB, run-series context, task, message in the object store); the
executor must claim it with the SuperExec secret, run the app, push the reply and the context
back — task after task with one app instance — and refuse apps other than fedcondense's.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.message.message import make_message
from flwr.app.metadata import Metadata
from flwr.clientapp import ClientApp
from flwr.supercore.constant import TaskType
from flwr.supercore.fab import Fab
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supernode import start_client_internal as sci
from flwr.supernode.main import create_app
from flwr.supernode.nodestate import NodeStateFactory

from fedcondense.client.site_app import APP_ID
from fedcondense.client.warm_executor import WarmExecutor
from fedcondense.deploy.flower_commands import free_port

NODE = 7


@dataclass
class Node:
    address: str
    secret: bytes
    state: Any
    store: Any

    def add_task(self, run_id: int, text: str, fab_id: str = APP_ID) -> None:
        """What the SuperNode does on receiving a message for ``run_id``."""
        if self.state.get_run(run_id) is None:
            fab = Fab(hashlib.sha256(b"fab").hexdigest(), b"fab", {})
            run = Run.create_empty(run_id)
            run.fab_id, run.fab_version, run.fab_hash = fab_id, "1.0.0", fab.hash_str
            run.series_id = run_id
            self.state.store_run(run)
            self.state.store_fab(fab)
            self.state.set_run_series_context(run_id, Context(
                run_id=run_id, node_id=NODE, node_config={"site-id": "a"}, state=RecordDict(),
                run_config={}))
        md = Metadata(run_id=run_id, message_id="", src_node_id=1, dst_node_id=NODE,
                      reply_to_message_id="", group_id="1", created_at=time.time(), ttl=600,
                      message_type="query")
        msg = make_message(md, RecordDict({"in": ConfigRecord({"text": text})}))
        self.state.create_task(task_type=TaskType.CLIENT_APP, run_id=run_id,
                               fab_hash=self.state.get_run(run_id).fab_hash)
        sci._insert_message(msg, self.state, self.store)

    def replies(self) -> list[Message]:
        out = []
        for m in self.state.get_messages_legacy(is_reply=True):
            out.append(m)
        return out


@pytest.fixture
def node() -> Iterator[Node]:
    secret = os.urandom(32)
    stores = ObjectStoreFactory()
    states = NodeStateFactory(objectstore_factory=stores)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        app=create_app(state_factory=states, superexec_auth_secret=secret),
        host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "Runtime API did not start"
        time.sleep(0.02)
    state = states.state()
    state.set_node_id(NODE)
    yield Node(f"127.0.0.1:{port}", secret, state, stores.store())
    server.should_exit = True
    thread.join(timeout=10)


def _echo_app(built: list[int]) -> ClientApp:
    built.append(1)
    app = ClientApp()

    @app.query()
    def echo(msg: Message, context: Context) -> Message:
        seen = context.state.config_records.get("seen", ConfigRecord({"n": 0}))
        context.state.config_records["seen"] = ConfigRecord({"n": int(seen["n"]) + 1})
        text = str(msg.content.config_records["in"]["text"])
        return Message(RecordDict({"out": ConfigRecord({"text": text.upper(),
                                                        "n": int(seen["n"]) + 1})}),
                       reply_to=msg)

    return app


def test_serves_task_after_task_with_one_app_and_keeps_context(node: Node) -> None:
    built: list[int] = []
    executor = WarmExecutor(node.address, node.secret, app_factory=lambda: _echo_app(built))
    for text in ("a", "b", "c"):
        node.add_task(11, text)
    executor.serve(threading.Event(), max_tasks=3)
    assert executor.served == 3 and len(built) == 1  # one app for all tasks
    replies = node.replies()
    assert len(replies) == 3 and all(not r.has_error() for r in replies)
    # the context the app changed went back to the SuperNode after every task
    assert node.state.get_run_series_context(11).state.config_records["seen"]["n"] == 3
    assert not node.state.get_tasks(statuses=None) or all(
        t.status != "pending" for t in node.state.get_tasks(statuses=None))


def test_refuses_an_app_other_than_fedcondense(node: Node) -> None:
    built: list[int] = []
    executor = WarmExecutor(node.address, node.secret, app_factory=lambda: _echo_app(built))
    node.add_task(12, "x", fab_id="someone/else")
    executor.serve(threading.Event(), max_tasks=1)
    (reply,) = node.replies()
    assert reply.has_error() and "serves only" in reply.error.reason
    assert not built  # the site's app was never even built for it


def test_acquire_needs_the_superexec_secret(node: Node) -> None:
    node.add_task(13, "x")
    intruder = WarmExecutor(node.address, os.urandom(32), app_factory=lambda: ClientApp())
    with pytest.raises(httpx.HTTPStatusError):
        intruder.acquire()
    assert WarmExecutor(node.address, node.secret).acquire() is not None
