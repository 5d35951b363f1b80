"""Shorter polling intervals inside Flower's simulation engine (one machine only).

Flower 1.41's simulation engine moves every message through its in-memory LinkState with two
fixed 0.1 s polls: the ServerApp's ``InMemoryGrid.send_and_receive`` sleeps ``pull_interval``
(0.1 s) between pulls for replies, and the engine's ``add_messages_to_queue`` thread waits
0.1 s between scans for new instructions. A SecAgg+ round is four request/reply stages, so
about 0.3 s of every round was spent sleeping: more than the sites' whole compute with the
batched backend (measured on breast_cancer, 3 sites, P = 64: framework 0.57 s → 0.27 s per
round with 10 ms polls).

:func:`fast_polling` shortens both for the duration of a simulation and restores Flower's
own values afterwards. It changes only how often in-process queues are looked at, never what
is sent; where Flower's internals differ from 1.41 it leaves them alone (the run is then only
slower). Deployments (SuperLink/SuperNodes over the network) are not affected.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Queue
from typing import Any

LOG = logging.getLogger(__name__)


def _scanner(interval: float) -> Any:
    """``add_messages_to_queue`` of flwr 1.41's ``vce_api`` with ``interval`` for its 0.1 s."""

    def add_messages_to_queue(state: Any, queue: Queue[Any], nodes_mapping: Any,
                              f_stop: threading.Event) -> None:
        while not f_stop.is_set():
            for node_id in nodes_mapping.keys():
                for msg in state.get_message_ins(node_id=node_id, limit=1):
                    queue.put(msg)
            f_stop.wait(interval)

    return add_messages_to_queue


@contextmanager
def fast_polling(interval: float = 0.01) -> Iterator[bool]:
    """Poll Flower's simulation queues every ``interval`` seconds inside the block.

    Yields
    ------
    bool
        Whether the intervals were changed (False where Flower's internals are not the
        expected ones; nothing is patched then).
    """
    try:
        from flwr.server.superlink.fleet.vce import vce_api
        from flwr.superlink.grid import inmemory_grid
    except ImportError:  # pragma: no cover - another Flower layout
        LOG.debug("flower simulation internals not found; keeping its polling intervals")
        yield False
        return
    grid_cls = inmemory_grid.InMemoryGrid
    old_scan = getattr(vce_api, "add_messages_to_queue", None)
    old_init = grid_cls.__init__
    if old_scan is None or "pull_interval" not in old_init.__code__.co_varnames:
        yield False  # pragma: no cover - another Flower layout
        return

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        old_init(self, *args, **kwargs)
        self.pull_interval = min(float(getattr(self, "pull_interval", interval)), interval)

    grid_cls.__init__ = init  # type: ignore[method-assign]
    vce_api.add_messages_to_queue = _scanner(interval)
    try:
        yield True
    finally:
        grid_cls.__init__ = old_init  # type: ignore[method-assign]
        vce_api.add_messages_to_queue = old_scan
