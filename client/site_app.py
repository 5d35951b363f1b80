"""The deployed site's ClientApp: what every site daemon runs, warm or in Flower's processes.

Used by the warm executor (:mod:`fedcondense.client.warm_executor`, one process serving task
after task) and by ``deploy/app/fedcondense_app/client_app.py`` (Flower's fallback: a fresh
``flwr-clientapp`` process per message). Only Flower and the thin adapter are imported here;
the site maths, the data loader and the accountant are imported by the first message that
needs them (and then stay loaded in a warm site).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.clientapp import ClientApp

from ..protocol.wire.messages import RoundMessage
from .app import make_client_app

APP_ID = "fedcondense/fedcondense-app"
"""Flower's ``fab_id`` (publisher/name in ``deploy/app/pyproject.toml``) a warm site serves."""


def _handler(message: RoundMessage, node_config: Mapping[str, Any]) -> np.ndarray:
    from .site_handler import CondensationHandler

    return CondensationHandler()(message, node_config)


def _hello(node_config: Mapping[str, Any], hello: Mapping[str, Any]) -> Mapping[str, Any]:
    from .budget_gate import hello_info

    return hello_info(node_config, hello)


def site_client_app() -> ClientApp:
    """A new site ``ClientApp`` (SecAgg+ mod, hello with the site's ledger, budget gate)."""
    return make_client_app(_handler, hello_info=_hello)
