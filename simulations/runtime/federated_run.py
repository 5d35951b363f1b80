"""Run the server and K sites through Flower on one machine (Ray simulation or in-process).

:func:`simulate_transport` wires :func:`fedcondense.client.app.make_client_app` (site side,
with an injected ``handler``) and :func:`fedcondense.server.secure_sum.run_rounds` (server
side, with ``make_round``/``on_sum`` callbacks) and runs them either through Flower's
simulation engine (``backend="ray"``: ``flwr.simulation.run_simulation``, one CPU per
client) or through :class:`~fedcondense.simulations.runtime.local_grid.LocalGrid` (``"local"``: no
Ray, sequential, for tests).

It also holds :class:`DemoHandler`, the transport benchmarks' payload (each site returns a
deterministic vector from its id and the round seed; can fail or overflow on chosen rounds).
The fault-injection mod the tests use lives in ``tests/fault_injection.py``.

Run ``python -m fedcondense.simulations.runtime.federated_run --help`` for a demo.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...protocol.wire.messages import OverflowPolicy, RoundMessage
from ...server.secure_sum import MakeRound, OnSum, RunReport, TransportConfig
from ...server.server_session import CapturedSession, ServerSession

SiteHandler = Callable[[RoundMessage, Mapping[str, Any]], np.ndarray]


def demo_vector(site_id: str, round_seed: int, dim: int, magnitude: float = 1.0) -> np.ndarray:
    """Deterministic float64 vector of site ``site_id`` for a round (plumbing tests)."""
    rng = np.random.default_rng([round_seed, zlib.crc32(site_id.encode())])
    return magnitude * rng.standard_normal(dim)


@dataclass(frozen=True)
class DemoHandler:
    """A site "computation" for transport tests.

    Parameters
    ----------
    magnitude : float
        Scale of the returned vector.
    fail : tuple of (site_id, round)
        The handler raises for these (a site crashing mid-round, SecAgg+ stage 2).
    overflow : tuple of (site_id, round)
        The handler returns a vector 100× beyond the public scale for these.
    delay_s : float
        Simulated site compute time (sleep) per call.
    """

    magnitude: float = 1.0
    fail: tuple[tuple[str, int], ...] = ()
    overflow: tuple[tuple[str, int], ...] = ()
    delay_s: float = 0.0

    def __call__(self, message: RoundMessage, node_config: Mapping[str, Any]) -> np.ndarray:
        site = str(node_config["site-id"])
        if (site, message.round_index) in self.fail:
            raise RuntimeError(f"injected failure at {site} round {message.round_index} "
                               f"(private detail that must not reach the server)")
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        v = demo_vector(site, message.round_seed, message.reply_dim, self.magnitude)
        if (site, message.round_index) in self.overflow:
            v = v / np.max(np.abs(v)) * 100.0 * message.clipping_range * message.scale
        return v


def demo_rounds(schema_hash: str, dim: int, scale: float = 1.0, run_id: str = "demo",
                seed: int = 7, overflow_policy: OverflowPolicy = "flag") -> MakeRound:
    """``make_round`` for transport tests: a small public payload, round seed from ``seed``."""

    def make_round(t: int) -> RoundMessage:
        z = np.linspace(-1.0, 1.0, 24).reshape(6, 4) * t
        return RoundMessage(schema_hash=schema_hash, run_id=run_id, round_index=t,
                            round_seed=(seed * 1_000_003 + t) % 2**63, reply_dim=dim,
                            scale=scale, arrays={"Z": z, "targets": np.arange(6) % 2},
                            hyper={"directions": dim, "mu": 0.1, "clip_norm": 1.0},
                            overflow_policy=overflow_policy)

    return make_round


def default_site_configs(n_sites: int, schema_hash: str, *, allow_plaintext: bool,
                         data_paths: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``site-1 .. site-K`` node configs (site id, schema hash, data path, plaintext policy).

    Simulated sites report their compute time with each reply (``report-timing``): the whole
    simulation runs on one machine, and ``simulate`` writes no site timing of a private run.
    A deployed site never sends it (the default), since it tracks the private batch size.
    """
    out: list[dict[str, Any]] = []
    for i in range(n_sites):
        cfg: dict[str, Any] = {"site-id": f"site-{i + 1}", "schema-hash": schema_hash,
                               "allow-plaintext": "true" if allow_plaintext else "false",
                               "report-timing": "true"}
        if data_paths is not None:
            cfg["data-path"] = str(data_paths[i])
        out.append(cfg)
    return out


def simulate_transport(handler: SiteHandler, make_round: MakeRound | None,
                       on_sum: OnSum | None, *,
                       rounds: int, config: TransportConfig, schema_hash: str,
                       site_configs: Sequence[Mapping[str, Any]] | None = None,
                       backend: str = "ray", extra_mods: Sequence[Any] = (),
                       num_cpus: int = 2, site_processes: int | None = None,
                       num_gpus: float = 0.0,
                       poll_interval: float | None = 0.01, verbose: bool = False,
                       session: CapturedSession | None = None) -> RunReport:
    """Run ``rounds`` rounds with ``config.expected_sites`` simulated sites.

    Parameters
    ----------
    handler : callable
        Site computation ``handler(message, node_config) -> vector``.
    make_round, on_sum : callables
        Server callbacks (see :func:`fedcondense.server.secure_sum.run_rounds`).
    rounds : int
    config : TransportConfig
    schema_hash : str
    site_configs : sequence of mappings, optional
        Per-site node config; default :func:`default_site_configs`.
    backend : {"ray", "local"}
        Flower's Ray simulation engine, or the in-process :class:`LocalGrid`.
    extra_mods : client mods placed before ``secaggplus_mod`` (fault injection).
    num_cpus : int
        CPUs Ray may use.
    site_processes : int, optional
        Ray actor processes that run the simulated sites (each takes ``num_cpus //
        site_processes`` CPUs); default one per CPU. ``1`` runs every site in one process, in
        turn, so per-process state — the public
        :class:`~fedcondense.protocol.condensation.federation.FitCache` — is shared by all
        simulated sites (only the ``"ray"`` backend; ``"local"`` is one process anyway).
    num_gpus : float
        GPUs the site processes share (split evenly over them). Ray hides every GPU from an
        actor that asked for none, so a run whose plan says ``cuda`` must ask for one.
    poll_interval : float, optional
        Seconds between the Ray engine's internal queue polls (Flower's own: 0.1 s; see
        :mod:`fedcondense.simulations.runtime.engine_polling`); ``None`` keeps Flower's.
    verbose : bool
        Flower debug logging.
    session : CapturedSession, optional
        The ``ServerApp`` main to run instead of a :class:`ServerSession` over ``make_round``
        and ``on_sum`` (e.g. the condensation coordinator of
        :mod:`fedcondense.simulations.runtime.federated_condense`).

    Returns
    -------
    RunReport
    """
    from ...client.app import make_client_app

    n = config.expected_sites
    configs = list(site_configs) if site_configs is not None else default_site_configs(
        n, schema_hash, allow_plaintext=not config.secure_aggregation)
    client_app = make_client_app(handler, site_configs=configs, extra_mods=extra_mods)
    if session is None:
        assert make_round is not None and on_sum is not None
        session = ServerSession(rounds, make_round, on_sum, config, schema_hash)
    if backend == "local":
        from .local_grid import LocalGrid

        grid = LocalGrid(client_app, [{"partition-id": i, "num-partitions": n}
                                      for i in range(n)])
        session(grid, grid.server_context())
    elif backend == "ray":
        _run_on_ray(session, client_app, n, num_cpus=num_cpus, site_processes=site_processes,
                    num_gpus=num_gpus, poll_interval=poll_interval, verbose=verbose)
    else:
        raise ValueError(f"unknown backend {backend!r}; use 'ray' or 'local'")
    if session.report is None:
        raise RuntimeError("the ServerApp finished without a report")
    return session.report


def _run_on_ray(session: CapturedSession, client_app: Any, n: int, *, num_cpus: int,
                site_processes: int | None, num_gpus: float, poll_interval: float | None,
                verbose: bool) -> None:
    """``session`` as the ServerApp of Flower's Ray simulation engine with ``n`` sites;
    the session's own error (not Flower's wrapper) is raised."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from flwr.simulation import run_simulation

    from ...server.server_session import make_server_app
    from .engine_polling import fast_polling

    per_actor = max(1, num_cpus // site_processes) if site_processes else 1
    actors = site_processes or num_cpus
    init_args: dict[str, Any] = {"num_cpus": num_cpus, "include_dashboard": False,
                                 "log_to_driver": bool(verbose)}  # Ray's actor lines
    if num_gpus > 0:
        init_args["num_gpus"] = max(1, int(np.ceil(num_gpus)))
    backend_config = {"client_resources": {"num_cpus": per_actor,
                                           "num_gpus": float(num_gpus) / actors},
                      "init_args": init_args}
    try:
        with fast_polling(poll_interval) if poll_interval else nullcontext():
            run_simulation(server_app=make_server_app(session), client_app=client_app,
                           num_supernodes=n, backend_config=backend_config,  # type: ignore[arg-type]
                           verbose_logging=verbose)
    except BaseException:
        if session.error is None:
            raise
    if session.error is not None:
        raise session.error


def _parse_drop(items: Sequence[str]) -> tuple[tuple[str, int], ...]:
    out = []
    for it in items:
        site, _, rnd = it.partition(":")
        out.append((site, int(rnd)))
    return tuple(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Demo: K sites return deterministic vectors; print secure sum vs exact sum per round."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--no-secure-aggregation", action="store_true")
    ap.add_argument("--backend", choices=("ray", "local"), default="ray")
    ap.add_argument("--fail", nargs="*", default=[], metavar="SITE:ROUND",
                    help="make SITE crash in ROUND, e.g. site-2:2")
    args = ap.parse_args(argv)
    schema_hash = "demo-schema"
    cfg = TransportConfig(expected_sites=args.sites,
                          secure_aggregation=not args.no_secure_aggregation)
    handler = DemoHandler(fail=_parse_drop(args.fail))
    make_round = demo_rounds(schema_hash, args.dim, scale=1.0)

    def on_sum(t: int, summed: np.ndarray | None, n: int, info: dict[str, Any]) -> None:
        msg = make_round(t)
        exact = sum(demo_vector(s, msg.round_seed, args.dim) for s in info["contributed"])
        err = float(np.max(np.abs(summed - exact))) if summed is not None and n else float("nan")
        print(f"round {t}: contributed={info['contributed']} dropped={info['dropped']} "
              f"max|secure-exact|={err:.3g} (bound {info['quantisation_bound']:.3g}) "
              f"wall={info['wall_s']:.3f}s overhead={info['overhead_s']:.3f}s")

    logging.basicConfig(level=logging.WARNING)
    simulate_transport(handler, make_round, on_sum, rounds=args.rounds, config=cfg,
                       schema_hash=schema_hash, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
