"""A legacy Flower ``Strategy`` that broadcasts one request and returns the *sum* of replies.

SecAgg+ in Flower 1.41 lives on the legacy path only: ``SecAggPlusWorkflow`` asks the
strategy's ``configure_fit`` for the per-node ``FitIns`` and hands ``aggregate_fit`` the
replies whose ``parameters`` were all replaced by the *weighted mean* of the masked vectors.
:class:`SumStrategy` therefore

* sends the prepared :class:`~fedcondense.protocol.wire.messages.RoundMessage` (flat config, no
  parameters) to exactly the nodes chosen by the driver;
* in secure mode turns the mean back into the sum: every site reports the same weight
  ``W == max_weight``, so ``mean × n_contributors × scale`` is the sum of the raw vectors;
* in plain mode adds the sites' vectors itself, in site-id order (exact for a power-of-two
  scale, up to float64 summation);
* keeps each site's plaintext metrics (site id, overflow flag, compute time) and never
  updates any global model (``aggregate_fit`` returns ``None`` parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from ..protocol.wire.messages import ProtocolError, RoundMessage
from ..protocol.wire.site_reply import SiteReply


@dataclass
class SumOutcome:
    """What ``aggregate_fit`` produced for one attempt.

    Attributes
    ----------
    summed : ndarray
        Sum of the contributors' raw vectors (secure: reconstructed from the SecAgg+ mean).
    contributors : dict of int to str
        Node id → site id of every reply that entered the sum.
    overflow : list of str
        Sites that flagged an overflow (clipped their own vector).
    compute_seconds : dict of str to float
        Site-reported handler time.
    failures : int
        Number of failures Flower reported to ``aggregate_fit``.
    """

    summed: np.ndarray
    contributors: dict[int, str]
    overflow: list[str] = field(default_factory=list)
    compute_seconds: dict[str, float] = field(default_factory=dict)
    failures: int = 0


class SumStrategy(Strategy):
    """Broadcast a prepared request to chosen nodes; aggregate to the sum.

    Use :meth:`prepare` before each attempt and :meth:`take_outcome` after it.
    """

    def __init__(self) -> None:
        self._message: RoundMessage | None = None
        self._targets: set[int] = set()
        self._outcome: SumOutcome | None = None

    # ------------------------------------------------------------------ driver hooks
    def prepare(self, message: RoundMessage, targets: set[int]) -> None:
        """Set the request and the node ids it goes to for the next attempt."""
        self._message = message
        self._targets = set(targets)
        self._outcome = None

    def take_outcome(self) -> SumOutcome | None:
        """The last attempt's outcome (``None`` if ``aggregate_fit`` never ran)."""
        out, self._outcome = self._outcome, None
        return out

    def fit_ins(self) -> FitIns:
        """The legacy ``FitIns`` carrying the prepared message."""
        if self._message is None:
            raise RuntimeError("SumStrategy.prepare() was not called")
        return FitIns(Parameters(tensors=[], tensor_type="numpy.ndarray"),
                      dict(self._message.to_config()))

    # ------------------------------------------------------------------ Strategy API
    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return Parameters(tensors=[], tensor_type="numpy.ndarray")

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        fit_ins = self.fit_ins()
        proxies = [p for p in client_manager.all().values() if p.node_id in self._targets]
        proxies.sort(key=lambda p: p.node_id)
        return [(p, fit_ins) for p in proxies]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[tuple[ClientProxy, FitRes] | BaseException],
                      ) -> tuple[Parameters | None, dict[str, Scalar]]:
        if self._message is None:
            raise RuntimeError("SumStrategy.prepare() was not called")
        self._outcome = summarise(self._message, results, len(failures))
        return None, {}

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: ClientManager
                           ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []

    def aggregate_evaluate(self, server_round: int,
                           results: list[tuple[ClientProxy, EvaluateRes]],
                           failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
                           ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters
                 ) -> tuple[float, dict[str, Scalar]] | None:
        return None


def summarise(message: RoundMessage, results: list[tuple[ClientProxy, FitRes]],
              n_failures: int = 0) -> SumOutcome:
    """Turn the replies of one attempt into the sum of raw vectors.

    Parameters
    ----------
    message : RoundMessage
        The request (its ``secure``, ``scale``, ``weight`` and ``reply_dim`` are used).
    results : list of (ClientProxy, FitRes)
        Secure mode: every ``FitRes.parameters`` holds the SecAgg+ weighted mean.
        Plain mode: each holds that site's scaled vector.
    n_failures : int
        Failures reported alongside.

    Returns
    -------
    SumOutcome
    """
    contributors: dict[int, str] = {}
    overflow: list[str] = []
    compute: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for proxy, res in results:
        site, flagged, seconds = SiteReply.parse_metrics(res.metrics)
        if res.num_examples != message.weight:
            raise ProtocolError(f"site {site} reported weight {res.num_examples}, the round "
                                f"requires {message.weight}; the secure sum would be wrong.")
        contributors[proxy.node_id] = site
        compute[site] = seconds
        if flagged:
            overflow.append(site)
        arrays = parameters_to_ndarrays(res.parameters)
        if len(arrays) != 1 or arrays[0].shape != (message.reply_dim,):
            raise ProtocolError(f"reply of site {site} has shapes "
                                f"{[a.shape for a in arrays]}, expected ({message.reply_dim},).")
        vectors[site] = np.asarray(arrays[0], dtype=np.float64)
    if len(set(contributors.values())) != len(contributors):
        raise ProtocolError("two nodes replied with the same site id in one round.")
    if not vectors:
        summed = np.zeros(message.reply_dim)
    elif message.secure:
        mean = next(iter(vectors.values()))  # all equal: SecAgg+ wrote the mean into each
        summed = mean * float(len(vectors)) * message.scale
    else:
        summed = np.zeros(message.reply_dim)
        for site in sorted(vectors):
            summed = summed + vectors[site] * message.scale
    return SumOutcome(summed, contributors, sorted(overflow), compute, n_failures)
