"""The one private Flower 1.41 internal the coordinator touches: how long a reply pull may block.

Why: the deployed ServerApp's grid (``flwr.superlink.grid.http_grid.HttpGrid``) fetches each
reply's contents with ``pull_objects`` and Flower's defaults (``supercore/constant.py``:
``PULL_MAX_TIME = 7200`` s, first retry after 1 s, retries capped at 10 s). A site killed
while uploading its reply leaves a message whose contents never arrive; ``pull_messages`` then
blocks on it until the SuperLink's object-push session expires (``OBJECT_PUSH_SESSION_TTL_SECONDS
= 180``), whatever stage timeout the coordinator chose, and holds up the other sites' replies
pulled in the same call. Measured on loopback: one SIGKILLed site turned a 45 s stage timeout
into a 185 s stage.

:func:`bounded_pulls` lets the coordinator's pulls give up at the stage's own deadline: inside
the block, ``http_grid.pull_objects`` is Flower's ``pull_objects`` with ``max_time`` set to the
time left, a short first retry and a short retry cap. A reply whose contents do not arrive in
time comes back as Flower's own ``MESSAGE_UNAVAILABLE`` error reply, so the site counts as
dropped at that stage — exactly what the stage timeout means. Nothing else changes.

:func:`problems` checks the internals used; when they differ (another Flower version), pulls
are left as Flower makes them (slow after a crash, still correct).
``tests/server/test_grid_pulls.py`` fails loudly when these internals change.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

LOG = logging.getLogger(__name__)

FIRST_RETRY_S = 0.05
"""First retry delay when a reply's contents are not stored yet (Flower: 1 s)."""
RETRY_CAP_S = 0.5
"""Longest retry delay, so that a pull overshoots its deadline by at most this (Flower: 10 s)."""
MIN_PULL_S = 0.5
"""A pull is always allowed this long, even at the deadline (contents being written now)."""


def problems() -> list[str]:
    """What differs from the Flower internals :func:`bounded_pulls` relies on (empty: none)."""
    try:
        from flwr.supercore.inflatable import inflatable_utils
        from flwr.superlink.grid import http_grid
    except ImportError as exc:
        return [f"Flower internals moved: {exc}"]
    found: list[str] = []
    if getattr(http_grid, "pull_objects", None) is not inflatable_utils.pull_objects and \
            not isinstance(getattr(http_grid, "pull_objects", None), partial):
        found.append("http_grid no longer imports pull_objects as a module global")
    try:
        src = inspect.getsource(http_grid.HttpGrid.pull_messages)
    except (AttributeError, OSError, TypeError):
        return found + ["http_grid.HttpGrid.pull_messages is gone"]
    if "pull_objects(" not in src or "except ObjectPullError" not in src:
        found.append("HttpGrid.pull_messages no longer calls pull_objects and turns "
                     "ObjectPullError into an error reply")
    params = inspect.signature(inflatable_utils.pull_objects).parameters
    missing = [p for p in ("max_time", "initial_backoff", "backoff_cap") if p not in params]
    if missing:
        found.append(f"pull_objects lost its parameters {missing}")
    return found


_CHECKED: list[str] | None = None


def _usable() -> bool:
    global _CHECKED  # noqa: PLW0603 - checked once per process
    if _CHECKED is None:
        _CHECKED = problems()
        if _CHECKED:
            LOG.warning("reply pulls are Flower's own (a crashed site may hold a stage up to "
                        "180 s): %s", "; ".join(_CHECKED))
    return not _CHECKED


@contextmanager
def bounded_pulls(seconds: float | None) -> Iterator[None]:
    """Within the block, the ServerApp grid's reply pulls give up after ``seconds``.

    Parameters
    ----------
    seconds : float or None
        Time left until the stage deadline; ``None`` leaves Flower's pulls unchanged.
    """
    if seconds is None or not _usable():
        yield
        return
    from flwr.supercore.inflatable.inflatable_utils import pull_objects
    from flwr.superlink.grid import http_grid

    original = http_grid.pull_objects
    http_grid.pull_objects = partial(pull_objects, max_time=max(seconds, MIN_PULL_S),
                                     initial_backoff=FIRST_RETRY_S, backoff_cap=RETRY_CAP_S)
    try:
        yield
    finally:
        http_grid.pull_objects = original
