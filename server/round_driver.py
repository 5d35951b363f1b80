"""The coordinator's round loop: one request after another until the run is done or must stop.

One loop for every way a run reaches its sites: ``condense`` (one data holder, no transport:
:class:`~fedcondense.server.central_run.CentralSite`), ``simulate`` (Flower's simulation
engine) and the deployed ServerApp (both :class:`SecureSumDelivery`, SecAgg+).

Each pass takes the sites that are online and have not stopped answering in this session,
builds the orchestrator's next request (:func:`~fedcondense.server.round_messages.build_message`),
hands it to the run's :class:`Delivery` (secure aggregation with retries and attempt numbers
after any an earlier session used, or the one local site), and applies the result:

* every delivery is charged to the site it reached, except deliveries the site refused for
  budget reasons (it charged nothing: its refusal carries :data:`BUDGET_MARK`);
* a site that timed out is dropped for the rest of the session (a crashed site does not cost
  every later round a stage timeout);
* the initialisation must reach enough sites or the run stops; a round that formed no sum is
  applied as a zero update and still charged;
* after the round the caller's ``after_round`` runs (checkpoint, progress line); a budget
  refusal then stops the run, naming the site.

Stopping goes through the caller's ``stop(message)``, which must not return (it writes the
stopped run's files and raises).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import numpy as np

from ..protocol.data.schema import Schema
from ..protocol.errors import FedcondenseError
from ..protocol.privacy.site_budget import BUDGET_MARK
from ..protocol.wire.messages import RoundMessage
from .orchestrator import Orchestrator
from .round_messages import build_message

LOG = logging.getLogger("fedcondense.coordinator")


class RunStopped(FedcondenseError):
    """The coordinator stopped the run cleanly (budget refusal, too few sites)."""


AfterRound = Callable[[RoundMessage, dict[str, Any], int, dict[str, float]], None]
"""``after_round(request, info, n_targets, seconds)``: checkpoint, progress line, … ``seconds``
has ``started`` (``perf_counter`` when the request was built), ``build`` and ``apply``."""


class Delivery(Protocol):
    """How a request reaches the sites and their sum comes back."""

    clipping_range: float
    """Public range the replies are scaled under (SecAgg+'s; any positive value locally)."""

    def online(self) -> set[int]:
        """Node ids reachable now."""
        ...

    def deliver(self, base: RoundMessage, targets: dict[int, str],
                attempt_base: int) -> tuple[np.ndarray | None, dict[str, Any]]:
        """Deliver ``base`` to ``targets``; the sum (``None`` if none formed) and the
        round's ``info`` (``charges``, ``contributed``, ``errors``, ``wall_s``,
        ``overhead_s``, ``site_compute_s``, …)."""
        ...


@dataclass
class SecureSumDelivery:
    """Delivery through Flower: SecAgg+ (or plain, in tests) over a traced grid."""

    grid: Any
    legacy: Any
    strategy: Any
    transport: Any

    @property
    def clipping_range(self) -> float:
        return float(self.transport.clipping_range)

    def online(self) -> set[int]:
        return set(self.grid.get_node_ids())

    def deliver(self, base: RoundMessage, targets: dict[int, str],
                attempt_base: int) -> tuple[np.ndarray | None, dict[str, Any]]:
        from .secure_sum import run_round

        outcome, info = run_round(self.grid, self.legacy, self.strategy, base, targets,
                                  self.transport, attempt_base)
        return (None if outcome is None else outcome.summed), info


@dataclass
class RoundLoop:
    """What every pass of the loop needs (see the module docstring).

    Attributes
    ----------
    delivery : Delivery
        How requests reach the sites (:class:`SecureSumDelivery`, or one local site).
    orch : Orchestrator
        The coordinator state the results are applied to.
    schema : Schema
    run_id : str
    sites : dict
        Node id → site id of the sites that answered the hello.
    threshold : int
        Fewest sites a round may go ahead with.
    session : int
        The coordinator's session of this run (sites refuse older sessions' requests).
    next_attempt : dict
        ``(kind, round) → first attempt number`` (after an earlier session's attempts).
    transport_log : list
        One ``info`` dict per round (appended to).
    noise_seed : int, optional
        Seeded (non-private) site noise for reproducible simulations; never in deployment.
    """

    delivery: Delivery
    orch: Orchestrator
    schema: Schema
    run_id: str
    sites: dict[int, str]
    threshold: int
    session: int = 1
    next_attempt: dict[tuple[str, int], int] = field(default_factory=dict)
    transport_log: list[dict[str, Any]] = field(default_factory=list)
    noise_seed: int | None = None
    lost: set[str] = field(default_factory=set)

    def targets(self) -> dict[int, str]:
        """The sites to ask next: online now and not dropped in this session."""
        online = self.delivery.online()
        return {n: s for n, s in self.sites.items() if n in online and s not in self.lost}

    def too_few_message(self, targets: dict[int, str]) -> str:
        orch = self.orch
        return (f"run {self.run_id} stopped before {'init' if orch.needs_init() else 'round'} "
                f"{orch.rounds_done + (0 if orch.needs_init() else 1)}: only "
                f"{len(targets)} of {len(orch.sites)} sites online "
                f"({sorted(targets.values())}), the threshold is {self.threshold}; resume "
                f"with resume=true when enough sites are back.")


def drive(loop: RoundLoop, after_round: AfterRound, stop: Callable[[str], NoReturn]) -> None:
    """Run requests until ``loop.orch`` is finished (see the module docstring)."""
    while not loop.orch.finished():
        targets = loop.targets()
        if len(targets) < loop.threshold:
            stop(loop.too_few_message(targets))
        t_build = time.perf_counter()
        base = build_message(loop.orch, loop.schema, loop.run_id,
                             loop.delivery.clipping_range, loop.session, loop.noise_seed)
        seconds = {"started": t_build, "build": time.perf_counter() - t_build}
        attempt_base = loop.next_attempt.get((base.kind, base.round_index), 0)
        summed, info = loop.delivery.deliver(base, targets, attempt_base)
        refused = {site: line for site, line in info["errors"].items() if BUDGET_MARK in line}
        _drop_silent_sites(loop, info)
        sent = [site for site, k in info["charges"].items() if site not in refused
                for _ in range(int(k))]
        contributed = list(info["contributed"]) if summed is not None else []
        summed = summed if contributed else None
        loop.transport_log.append({k: v for k, v in info.items() if k != "errors"}
                                  | {"errors": info["errors"]})
        t_apply = time.perf_counter()
        if base.kind == "init":
            if summed is None or not loop.orch.apply_init(summed, sent, contributed):
                why = "; ".join(refused.values()) or "too few sites answered"
                stop(f"run {loop.run_id} stopped at the initialisation: {why}")
        else:
            loop.orch.apply_round(
                summed if summed is not None else np.zeros(loop.orch.config.directions),
                sent, contributed if summed is not None else [],
                {"wall_s": info["wall_s"], "overhead_s": info["overhead_s"],
                 "site_compute_s": info.get("site_compute_s")})
        seconds["apply"] = time.perf_counter() - t_apply
        after_round(base, info, len(targets), seconds)
        if refused:
            stop(f"run {loop.run_id} stopped after {base.kind} {base.round_index}: "
                 + " | ".join(refused[k] for k in sorted(refused)))


def _drop_silent_sites(loop: RoundLoop, info: dict[str, Any]) -> None:
    """Sites that timed out (no line of their own) are dropped for the rest of the session."""
    timed_out = {site for site, line in info["errors"].items()
                 if site in loop.orch.sites and not line.startswith("site ")}
    if timed_out - loop.lost:
        LOG.warning("run %s: %s stopped answering; dropped for the rest of this session",
                    loop.run_id, sorted(timed_out - loop.lost))
    loop.lost |= timed_out


def open_loop(context: Any, tgrid: Any, orch: Orchestrator, schema: Schema, run_id: str,
              sites: dict[int, str], transport: Any, threshold: int, *, session: int = 1,
              next_attempt: dict[tuple[str, int], int] | None = None,
              transport_log: list[dict[str, Any]] | None = None,
              noise_seed: int | None = None) -> RoundLoop:
    """A :class:`RoundLoop` over ``sites`` with the SecAgg+ workflow's legacy context (a
    client manager of those nodes and the sum strategy), inside a ``ServerApp`` main."""
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.compat.grid_client_proxy import GridClientProxy

    from .strategy import SumStrategy

    transport.validate()
    manager = SimpleClientManager()
    for nid in sites:
        manager.register(GridClientProxy(nid, tgrid, tgrid.run.run_id))
    strategy = SumStrategy()
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=orch.config.rounds + 1),
                           strategy=strategy, client_manager=manager)
    return RoundLoop(SecureSumDelivery(tgrid, legacy, strategy, transport), orch, schema,
                     run_id, sites, threshold, session, dict(next_attempt or {}),
                     list(transport_log or []), noise_seed)
