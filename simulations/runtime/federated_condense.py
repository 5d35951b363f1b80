"""A federated condensation run on one machine: orchestrator + sites over Flower.

:func:`run_federated` connects the transport-free :class:`~fedcondense.server.orchestrator.Orchestrator`
(synthetic set, optimiser, per-site accounting) to the Flower transport
(:func:`~fedcondense.simulations.runtime.federated_run.simulate_transport`: SecAgg+ or plain sums,
Ray simulation engine or the in-process grid) through :class:`CoordinatorSession`, which runs
the deployed coordinator's own round loop (:mod:`fedcondense.server.round_driver`: same
requests, refusals, dropped sites and stops as ``flwr run deploy/app``), and to the sites'
:class:`~fedcondense.client.site_handler.CondensationHandler` (as
:class:`~fedcondense.simulations.runtime.round_timing.TimedSiteHandler`, which also logs each site's
fit/predict/privacy seconds on this machine for the round split in ``run.json``).

Fit sharing: the fits on ``S ± μU`` never touch private data, so by default
(``site_processes=1``) every simulated site runs in one Ray actor process, in turn, and the
per-process :class:`~fedcondense.protocol.condensation.federation.FitCache` makes the first site of a
round fit and the others reuse its fitted models: one fit per round instead of K. Fitted
models never leave that process (nothing is pickled or sent); a deployed site fits for itself.

Compute: the run's :class:`~fedcondense.simulations.runtime.compute_plan.ComputePlan` (backends,
device, threads — the same choice ``condense`` makes on this machine) is made once here and
given to every simulated site through its local node config (``device``) and the
simulation's handler (``threads``); nothing about it travels in a round message.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ...protocol.condensation.condenser import CondenseConfig
from ...protocol.condensation.federation import NoiseMode
from ...protocol.data.schema import Schema
from ...protocol.wire.messages import RoundMessage
from ...server.orchestrator import Orchestrator, SiteInfo
from ...server.secure_sum import RunReport, TransportConfig
from ...server.server_session import CapturedSession
from .compute_plan import ComputePlan, plan_compute
from .federated_run import default_site_configs, simulate_transport
from .round_timing import TimedSiteHandler, read_site_timings, round_split


@dataclass
class FederatedResult:
    """The finished orchestrator and the transport's per-round report."""

    orchestrator: Orchestrator
    report: RunReport
    wall_seconds: float
    compute: ComputePlan = field(default_factory=ComputePlan)


def simulated_capacity(n_rows: int) -> int:
    """What a simulated site declares as its capacity: its size rounded *up* to two
    significant digits (207 → 210, 3,452 → 3,500), as an operator would declare a public
    bound; the exact count is not used by the coordinator."""
    digits = max(0, len(str(int(n_rows))) - 2)
    step = 10 ** digits
    return int(-(-int(n_rows) // step) * step)


@dataclass
class CoordinatorSession(CapturedSession):
    """The simulated coordinator: the deployed round loop
    (:func:`~fedcondense.server.round_driver.drive`) as the simulation's ``ServerApp`` main.

    Same requests (one message builder), same handling of refusals, silent sites (dropped
    for the rest of the run), thresholds and stops as a deployed run; what differs is only
    what a simulation adds: seeded noise for reproducible studies, an optional checkpoint
    file and a progress callback ``progress(request_number, {"seconds": wall})``.
    """

    orch: Orchestrator
    schema: Schema
    run_id: str
    transport: TransportConfig
    threshold: int
    noise_seed: int | None = None
    checkpoint: Path | None = None
    progress: Callable[[int, dict[str, float]], None] | None = None

    def run(self, grid: Any, context: Any) -> RunReport:
        from ...server.round_driver import RunStopped, drive, open_loop
        from ...server.secure_sum import handshake, wait_for_nodes
        from ...server.transport_trace import TracingGrid

        t0 = time.perf_counter()
        tgrid = TracingGrid(grid)
        nodes = wait_for_nodes(tgrid, self.transport.expected_sites, self.transport.node_wait)
        sites = handshake(tgrid, nodes, self.schema.hash(), self.transport.timeout,
                          run_id=self.run_id, session=1)
        report = RunReport(sites=dict(sites), handshake_s=time.perf_counter() - t0)
        loop = open_loop(context, tgrid, self.orch, self.schema, self.run_id, sites,
                         self.transport, self.threshold, noise_seed=self.noise_seed)

        def after_round(base: RoundMessage, info: dict[str, Any], n_targets: int,
                        seconds: dict[str, float]) -> None:
            if self.checkpoint is not None and not self.orch.needs_init():
                self.orch.save(self.checkpoint)
            if self.progress is not None:
                self.progress(len(loop.transport_log), {"seconds": float(info["wall_s"])})

        def stop(message: str) -> NoReturn:
            raise RunStopped(message)

        drive(loop, after_round, stop)
        report.rounds = loop.transport_log
        report.total_s = time.perf_counter() - t0
        return report


def run_federated(site_files: Sequence[Path], schema_path: Path, config: CondenseConfig, *,
                  mode: NoiseMode = "distributed", secure: bool = True,
                  threshold: int | None = None, backend: str = "ray",
                  progress: Callable[[int, dict[str, float]], None] | None = None,
                  extra_mods: Sequence[Any] = (),
                  checkpoint: Path | None = None,
                  site_processes: int | None = 1,
                  compute: ComputePlan | None = None) -> FederatedResult:
    """Condense jointly over ``site_files`` (one validated table per site); with
    ``checkpoint`` the coordinator state is written atomically after every round.
    ``site_processes``: Ray actor processes for the sites (1: all sites share one process and
    its fits; ``None``: one per CPU, each process fitting for itself). Each history row gets
    its ``time_split_s`` (:func:`~fedcondense.simulations.runtime.round_timing.round_split`).
    ``compute``: the run's plan (default :func:`~fedcondense.simulations.runtime.compute_plan.plan_compute`
    for ``config``), used by every simulated site and by this process."""
    from ...protocol.data.site_table import load_site_table

    schema = Schema.load(schema_path)
    tables = [load_site_table(p, schema) for p in site_files]
    configs = default_site_configs(len(site_files), schema.hash(), allow_plaintext=not secure,
                                   data_paths=[str(p) for p in site_files])
    if compute is None:
        compute = plan_compute(config.resolved_models(schema), config.backend)
    if backend == "local":
        compute.apply()  # the in-process grid's sites compute in this process
    for cfg, table in zip(configs, tables):
        cfg["schema-path"] = str(schema_path)
        cfg["device"] = compute.device
        cfg["capacity"] = simulated_capacity(table.n_rows)
        if config.seed is not None:  # the simulated sites' own config allows seeded noise
            cfg["allow-seeded-noise"] = "true"
    infos = [SiteInfo(c["site-id"], int(c["capacity"]), config.sample_rate) for c in configs]
    n_sites = len(infos)
    if threshold is None:
        threshold = max(2, n_sites - 1) if secure and n_sites > 2 else n_sites
    orch = Orchestrator(schema, config, infos, mode=mode, threshold=threshold)
    run_id = f"simulate-{int(time.time())}"
    transport = TransportConfig(expected_sites=n_sites, secure_aggregation=secure,
                                min_sites=threshold if secure else None)
    total = config.rounds + (1 if orch.needs_init() else 0)  # requests, for the grid

    session = CoordinatorSession(orch, schema, run_id, transport, threshold,
                                 noise_seed=config.seed, checkpoint=checkpoint,
                                 progress=progress)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedcondense-timings-") as timing_dir:
        handler = TimedSiteHandler(timing_dir=timing_dir, threads=compute.threads)
        gpus = 1.0 if compute.device.startswith("cuda") else 0.0
        report = simulate_transport(handler, None, None, session=session,
                                    rounds=total, config=transport, schema_hash=schema.hash(),
                                    site_configs=configs, backend=backend, extra_mods=extra_mods,
                                    site_processes=site_processes, num_gpus=gpus)
        timings = read_site_timings(timing_dir)
    for row in orch.history:
        sites = timings.get(int(row["round"]), {})
        if sites and row.get("wall_s") is not None:
            row["time_split_s"] = round_split(float(row["wall_s"]), sites)
    return FederatedResult(orch, report, time.perf_counter() - t0, compute)
