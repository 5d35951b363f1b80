"""ClientApp: a hospital's site (SecAgg+, its own privacy ledger).

Flower 1.41 starts a fresh ClientApp process for every message (four per SecAgg+ round plus
the hello), so this module imports only Flower and the thin adapter; the site maths, the data
loader and the accountant are imported inside the first message that needs them.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedcondense.client.app import make_client_app
from fedcondense.protocol.messages import RoundMessage


def _handler(message: RoundMessage, node_config: Mapping[str, Any]) -> np.ndarray:
    from fedcondense.client.site_handler import CondensationHandler

    return CondensationHandler()(message, node_config)


def _hello(node_config: Mapping[str, Any], hello: Mapping[str, Any]) -> Mapping[str, Any]:
    from fedcondense.client.budget_gate import hello_info

    return hello_info(node_config, hello)


app = make_client_app(_handler, hello_info=_hello)
