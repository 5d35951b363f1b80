"""The coordinator's bounded reply pulls (``server/grid_pulls.py``) against Flower's internals."""

from __future__ import annotations

import pytest
from flwr.supercore.inflatable.inflatable_utils import ObjectPullError, ObjectUnavailableError
from flwr.superlink.grid import http_grid

from fedcondense.server import grid_pulls


def test_pinned_internals_are_the_ones_read() -> None:
    """Fails loudly when Flower changes how HttpGrid pulls reply contents."""
    assert grid_pulls.problems() == []


@pytest.mark.timeout(60)
def test_a_reply_whose_contents_never_arrive_gives_up_at_the_deadline() -> None:
    calls: list[str] = []

    def never_stored(object_id: str) -> bytes:
        calls.append(object_id)
        raise ObjectUnavailableError(object_id)

    original = http_grid.pull_objects
    with grid_pulls.bounded_pulls(0.6):
        with pytest.raises(ObjectPullError, match="timeout or retry limit"):
            http_grid.pull_objects(object_ids=["abc"], pull_object_fn=never_stored)
    assert http_grid.pull_objects is original  # restored after the block
    assert len(calls) >= 2  # it did retry (contents may be in flight), then gave up


def test_available_contents_pass_through_and_none_leaves_flower_alone() -> None:
    original = http_grid.pull_objects
    with grid_pulls.bounded_pulls(5.0):
        got = http_grid.pull_objects(object_ids=["a", "b"], pull_object_fn=lambda i: i.encode())
    assert got == {"a": b"a", "b": b"b"}
    with grid_pulls.bounded_pulls(None):
        assert http_grid.pull_objects is original
