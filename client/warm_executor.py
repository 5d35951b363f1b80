"""A warm site: one long-running process that serves the SuperNode's ClientApp tasks.

Flower 1.41 starts a fresh ``flwr-clientapp`` process for every message (four per SecAgg+
round): each pays ~2 s of Flower imports, then re-imports the site maths, re-reads and
re-validates the site's table and refits its models. A SuperNode started with ``--isolation
process`` starts no executor of its own; this one takes its place, next to it on the site's
machine (``fedcondense site start`` starts, supervises and stops both):

1. ``AcquireTask`` on the SuperNode's Runtime API (127.0.0.1), signed with the SuperExec
   shared secret (HMAC; the SuperNode refuses unsigned acquisitions), every
   :data:`TASK_POLL_S` seconds;
2. for a task: a client holding the task's own token, a task heartbeat while it runs
   (the SuperNode expires tasks whose heartbeat stops), ``PullTaskInput`` and the message
   (contents retried after 0.05 s instead of Flower's 1 s);
3. runs the site's own ClientApp (:func:`fedcondense.client.site_app.site_client_app`, built
   once per process, so its table, encoders, fitted model families and imports stay loaded
   for the whole run) — only for runs of the fedcondense app (:data:`APP_ID`); any other app
   gets an error reply, since a site executes only code installed at the site;
4. pushes the reply and the task's final status and context (SecAgg+ keeps its per-round
   state in the context, which the SuperNode stores between messages, as with Flower's
   executor).

Nothing is held outside the site: the process talks only to its own SuperNode on loopback.
Flower internals used here are checked by :mod:`fedcondense.deploy.flower_pins`.

Run ``python -m fedcondense.client.warm_executor --runtime-api 127.0.0.1:9094 --secret-file
F`` (what ``site start`` does).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

LOG = logging.getLogger("fedcondense.site.executor")
TASK_POLL_S = 0.1
"""Seconds between ``AcquireTask`` calls while the SuperNode has no task."""
PULL_BACKOFF_S = 0.05
"""First retry delay for message contents the SuperNode has not stored yet (Flower: 1 s)."""
READY_LINE = "fedcondense warm executor ready"
"""Logged once the executor has reached the SuperNode's Runtime API."""


def _retry_invoker() -> Any:
    """Retry transport errors and 502/503/504 for up to 30 s; give up on anything else.

    Flower's own HTTP invoker SIGINTs its process on a 401 (a one-task ``flwr-clientapp``
    exits); a long-lived executor instead fails that one task and goes on.
    """
    import httpx
    from flwr.supercore.retry import RetryInvoker, exponential

    def give_up(exc: Exception) -> bool:
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code not in (502, 503, 504)
        return False

    return RetryInvoker(lambda: exponential(max_delay=2.0), httpx.HTTPError, max_tries=None,
                        max_time=30.0, should_giveup=give_up)


def _runtime_client(address: str, interceptors: list[Any]) -> Any:
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.runtime import RuntimeHttpClient

    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
                      *interceptors],
        retry_invoker=_retry_invoker())


def pull_task_input(client: Any) -> tuple[Any, Any, Any]:
    """``(message, context, run)`` of the task ``client``'s token stands for.

    As ``flwr.supernode.runtime.run_clientapp.pull_task_input`` (1.41), with a short first
    retry delay for contents and without the FAB (a warm site runs its own installed app).
    """
    from flwr.app import Message
    from flwr.common.serde import context_from_proto, run_from_proto
    from flwr.proto.node_pb2 import Node  # pylint: disable=E0611
    from flwr.proto.runtime_pb2 import PullAppMessagesRequest, PullTaskInputRequest  # pylint: disable=E0611
    from flwr.supercore.inflatable.inflatable_protobuf_utils import (
        make_confirm_message_received_fn_protobuf,
        make_pull_object_fn_protobuf,
    )
    from flwr.supercore.inflatable.inflatable_utils import pull_and_inflate_object_from_tree
    from flwr.supercore.task_identity import TaskIdentity

    res = client.PullTaskInput(PullTaskInputRequest())
    TaskIdentity.task_id = res.task_id
    TaskIdentity.run_id = res.run.run_id
    TaskIdentity.node_id = res.context.node_id
    context = context_from_proto(res.context)
    run = run_from_proto(res.run)
    pulled = client.PullMessages(PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("no message for this task on the Runtime API")
    node = Node(node_id=context.node_id)
    tree = pulled.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        tree, make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(client.ConfirmMessageReceived, node,
                                                  context.run_id),
        return_type=Message, initial_backoff=PULL_BACKOFF_S)
    message.metadata.__dict__["_message_id"] = tree.object_id
    return message, context, run


class WarmExecutor:
    """Serve ClientApp tasks of one SuperNode with one long-lived app.

    Parameters
    ----------
    runtime_api : str
        The SuperNode's Runtime API, ``127.0.0.1:PORT``.
    secret : bytes
        The SuperExec shared secret the SuperNode was started with.
    app_factory : callable, optional
        Builds the ClientApp (once); default: the site's own app.
    app_id : str
        The Flower ``fab_id`` whose runs this executor serves.
    """

    def __init__(self, runtime_api: str, secret: bytes,
                 app_factory: Callable[[], Any] | None = None, app_id: str | None = None,
                 poll: float = TASK_POLL_S) -> None:
        from flwr.supercore.interceptors import SuperExecAuthHttpInterceptor

        from .site_app import APP_ID, site_client_app

        self.runtime_api = runtime_api
        self.app_factory = app_factory or site_client_app
        self.app_id = app_id or APP_ID
        self.poll = poll
        self.served = 0
        self._app: Any = None
        self._control = _runtime_client(runtime_api, [SuperExecAuthHttpInterceptor(
            master_secret=secret, protected_methods=frozenset(
                {"/flwr.proto.Runtime/AcquireTask"}))])

    def acquire(self) -> tuple[str, Any] | None:
        """Claim the oldest pending ClientApp task: ``(token, task)`` or ``None``."""
        from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
        from flwr.supercore.constant import TaskType

        res = self._control.AcquireTask(AcquireTaskRequest(
            supported_task_types=[TaskType.CLIENT_APP.value]))
        if res.HasField("task") and res.token:
            return res.token, res.task
        return None

    def serve(self, stop: threading.Event, max_tasks: int | None = None) -> None:
        """Serve tasks until ``stop`` is set (or ``max_tasks`` were served)."""
        announced = False
        while not stop.is_set() and (max_tasks is None or self.served < max_tasks):
            try:
                claimed = self.acquire()
            except Exception as exc:  # noqa: BLE001 - SuperNode (re)starting: retry
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status in (401, 403):
                    raise PermissionError(f"the SuperNode at {self.runtime_api} refused this "
                                          f"executor (HTTP {status}): wrong SuperExec "
                                          f"secret?") from None
                LOG.debug("AcquireTask failed: %s", exc)
                stop.wait(0.5)
                continue
            if not announced:
                LOG.warning("%s (Runtime API %s)", READY_LINE, self.runtime_api)
                announced = True
            if claimed is None:
                stop.wait(self.poll)
                continue
            self.run_task(*claimed)

    def app(self) -> Any:
        if self._app is None:
            self._app = self.app_factory()
        return self._app

    def run_task(self, token: str, task: Any) -> None:
        """Execute one claimed task as ``flwr-clientapp`` would, with the warm app."""
        from flwr.app import Message
        from flwr.app.error import Error
        from flwr.common.constant import ErrorCode, SubStatus
        from flwr.supercore.heartbeat import HeartbeatSender
        from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor
        from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

        t0 = time.perf_counter()
        client = _runtime_client(self.runtime_api, [RuntimeTokenHttpInterceptor(token)])
        heartbeat = HeartbeatSender(_task_heartbeat(client))
        message = context = reply = None
        status, details = SubStatus.FAILED, "ClientApp task failed"
        try:
            heartbeat.start()
            message, context, run = pull_task_input(client)
            if run.fab_id != self.app_id:
                raise PermissionError(f"this site serves only {self.app_id}, not "
                                      f"{run.fab_id!r}")
            reply = self.app()(message=message, context=context)
            status, details = SubStatus.COMPLETED, ""
        except Exception as exc:  # noqa: BLE001 - as flwr-clientapp: error reply, go on
            LOG.error("task %s failed: %s", getattr(task, "task_id", "?"), exc,
                      exc_info=not isinstance(exc, PermissionError))
            details = f"{type(exc)}:<'{exc}'>"
            if message is not None:
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                      reason=details), reply_to=message)
        finally:
            try:
                if reply is not None and context is not None:
                    push_message(client, reply, context)
            except Exception:  # noqa: BLE001
                LOG.exception("could not push the reply of task %s", task.task_id)
            try:
                push_task_output(client=client, context=context, sub_status=status,
                                 details=details)
            except Exception:  # noqa: BLE001 - e.g. the run was stopped meanwhile
                LOG.exception("could not push the status of task %s", task.task_id)
            if heartbeat.is_running:
                heartbeat.stop()
            client.close()
        self.served += 1
        LOG.info("task %s (%s) served in %.2f s", task.task_id,
                 message.metadata.message_type if message is not None else "?",
                 time.perf_counter() - t0)


def _task_heartbeat(client: Any) -> Callable[[], bool]:
    """Flower's task heartbeat, except that a refused heartbeat (task expired) is logged
    instead of raising SIGINT in this long-lived process."""
    import httpx
    from flwr.proto.runtime_pb2 import SendTaskHeartbeatRequest  # pylint: disable=E0611

    def beat() -> bool:
        try:
            res = client.SendTaskHeartbeat(SendTaskHeartbeatRequest())
        except httpx.TransportError:
            return False
        except httpx.HTTPStatusError as err:
            if err.response.status_code in (503, 504):
                return False
            raise
        if not res.success:
            LOG.error("the SuperNode no longer knows this task (heartbeat refused)")
        return True

    return beat


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fedcondense warm site executor (serves the "
                                 "SuperNode's ClientApp tasks in one process).")
    ap.add_argument("--runtime-api", required=True, help="127.0.0.1:PORT of the SuperNode.")
    ap.add_argument("--secret-file", type=Path, required=True,
                    help="The SuperExec shared secret file the SuperNode reads.")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Runtime API call
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    executor = WarmExecutor(args.runtime_api, args.secret_file.read_bytes())
    executor.app()  # build the app and import the site maths before the first task arrives
    from . import budget_gate, site_handler  # noqa: F401
    try:
        executor.serve(stop)
    except PermissionError as exc:
        LOG.error("%s", exc)
        return 3
    LOG.warning("fedcondense warm executor stopped after %d tasks", executor.served)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
