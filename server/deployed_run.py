"""The coordinator of a deployed run: the ``ServerApp`` main behind ``flwr run deploy/app``.

:func:`coordinate` reads the run config (:class:`DeploySettings`), waits for the sites, says
hello (protocol version, schema hash, run id; each site answers with its record count and
the ledger keys it already charged for this run), then runs the
:class:`~fedcondense.server.orchestrator.Orchestrator` over SecAgg+ round by round:

* every request carries the declared privacy plan, so each site prices it with its own
  ledger (:mod:`fedcondense.protocol.site_budget`); a site that refuses for budget reasons
  stops the run cleanly with one line naming it (after applying that round if the others
  still formed a valid sum);
* per-stage timeouts everywhere (``stage-timeout``, ``node-wait``): a site that disconnects
  mid-round is dropped for that round, offline sites are skipped, and the run continues
  while the threshold holds, stopping with a clear message when it does not;
* after every round the whole coordinator state is checkpointed atomically
  (``OUT/checkpoint.npz``, plus ``OUT/coordinator.json`` with the run id and seed);
  ``resume = true`` continues from the last complete round, charging the interrupted
  round's deliveries exactly once from the sites' ledger keys and numbering new attempts
  after them;
* the release (``synthetic.csv``, ``privacy.json`` with ``per_site``, ``run.json``) is
  written only when every round is done; a stopped run leaves ``privacy.json`` and
  ``run.json`` with ``"status": "stopped"`` and no ``synthetic.csv``.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedcondense.protocol.condenser import CondenseConfig, config_dict
from fedcondense.protocol.errors import FedcondenseError
from fedcondense.protocol.federation import NoiseMode
from fedcondense.protocol.schema import Schema
from fedcondense.protocol.site_budget import BUDGET_MARK
from fedcondense.server.orchestrator import Orchestrator, SiteInfo
from fedcondense.server.round_messages import build_message
from fedcondense.server.run_progress import (progress, round_line, route_flower_logs,
                                              stage_medians)

LOG = logging.getLogger("fedcondense.coordinator")
STATE_FILE = "coordinator.json"
CHECKPOINT_FILE = "checkpoint.npz"
REPLY_POLL_S = 0.1
"""Seconds between the coordinator's pulls for replies (Flower's own grid waits 3 s)."""


class RunStopped(FedcondenseError):
    """The coordinator stopped the run cleanly (budget refusal, too few sites)."""


@dataclass(frozen=True)
class DeploySettings:
    """Everything ``flwr run`` passes through ``--run-config`` (see ``deploy/app``)."""

    schema_path: Path
    out_dir: Path
    sites: int
    threshold: int
    mode: NoiseMode
    stage_timeout: float
    node_wait: float
    max_attempts: int
    resume: bool
    condense: CondenseConfig
    reply_poll: float = REPLY_POLL_S

    @classmethod
    def from_run_config(cls, rc: Mapping[str, Any]) -> "DeploySettings":
        def get(key: str) -> Any:
            if key not in rc:
                raise FedcondenseError(f"run config lacks '{key}'; pass --run-config "
                                       f"\"{key}=...\" to flwr run.")
            return rc[key]

        models = tuple(m for m in str(rc.get("models", "")).split(",") if m)
        seed = int(rc.get("seed", -1))
        cc = CondenseConfig(
            epsilon=float(get("epsilon")), delta=float(get("delta")), rows=int(get("rows")),
            models=models, rounds=int(get("rounds")), directions=int(get("directions")),
            sample_rate=float(get("sample-rate")), mu=float(rc.get("mu", 0.1)),
            lr=float(rc.get("lr", 0.05)), clip_norm=float(rc.get("clip-norm", 1.0)),
            init=str(rc.get("init", "dp")), init_share=float(rc.get("init-share", 0.3)),
            backend=str(rc.get("backend", "auto")), seed=None if seed < 0 else seed)
        mode = str(rc.get("mode", "distributed"))
        if mode not in ("local", "distributed"):
            raise FedcondenseError(f"run config mode={mode!r}: use 'local' or 'distributed'.")
        n = int(get("sites"))
        t = int(rc.get("threshold", 0)) or max(2, n - 1)
        return cls(Path(str(get("schema-path"))), Path(str(get("out-dir"))), n, t,
                   mode,  # type: ignore[arg-type]
                   float(rc.get("stage-timeout", 60.0)), float(rc.get("node-wait", 120.0)),
                   int(rc.get("max-attempts", 2)), bool(rc.get("resume", False)), cc,
                   float(rc.get("reply-poll", REPLY_POLL_S)))


def parse_key(key: str, run_id: str) -> tuple[str, int, int] | None:
    """``(kind, round, attempt)`` of a ledger key of ``run_id`` (``None`` otherwise)."""
    parts = key[len(run_id) + 1:].split("/") if key.startswith(run_id + "/") else []
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None


def reconcile(orch: Orchestrator, hello: Mapping[str, Mapping[str, Any]], run_id: str
              ) -> dict[tuple[str, int], int]:
    """Charge deliveries the checkpoint does not hold (sites' ledger keys, once each);
    return the next free attempt number per ``(kind, round)``."""
    next_attempt: dict[tuple[str, int], int] = {}
    for site, rec in hello.items():
        counts: dict[str, int] = {}
        for key in str(rec.get("charged", "")).split(","):
            parsed = parse_key(key, run_id) if key else None
            if parsed is None:
                continue
            kind, rnd, attempt = parsed
            slot = (kind, rnd)
            next_attempt[slot] = max(next_attempt.get(slot, 0), attempt + 1)
            done = (kind == "init" and not orch.needs_init()) or \
                (kind == "round" and rnd <= orch.rounds_done)
            if not done or orch.resumed_from is None:
                counts[kind] = counts.get(kind, 0) + 1
        for kind, n in counts.items():
            orch.charge_orphans(site, kind, n)
            LOG.warning("site %s: %d %s delivery(ies) of an interrupted session charged from "
                        "its ledger", site, n, kind)
    return next_attempt


def _write_json(path: Path, obj: Any) -> None:
    from fedcondense.protocol.atomic_file import atomic_write_text
    from fedcondense.protocol.release import dumps

    atomic_write_text(path, dumps(obj))


def coordinate(grid: Any, context: Any) -> None:
    """``ServerApp`` main: one deployed fedcondense run (or its resumption)."""
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.compat.grid_client_proxy import GridClientProxy

    from fedcondense.protocol.release import package_versions, write_release
    from fedcondense.server.secure_sum import (TransportConfig, handshake, run_round,
                                               wait_for_nodes)
    from fedcondense.server.strategy import SumStrategy
    from fedcondense.server.transport_trace import TracingGrid

    t_start = time.perf_counter()
    s = DeploySettings.from_run_config(context.run_config)
    out = s.out_dir
    out.mkdir(parents=True, exist_ok=True)
    route_flower_logs(out)
    schema = Schema.load(s.schema_path)
    if s.condense.rows <= 0:  # 0: the same default as `simulate` for this kind of table
        from fedcondense.protocol.synthetic_set import resolve_rows

        s = replace(s, condense=replace(s.condense, rows=resolve_rows(schema, None, None)))
    state_path, ck_path = out / STATE_FILE, out / CHECKPOINT_FILE
    if s.resume:
        if not state_path.exists():
            raise FedcondenseError(f"{out}: nothing to resume (no {STATE_FILE}); start a new run.")
        state = json.loads(state_path.read_text(encoding="utf-8"))
        state["sessions"] = list(state.get("sessions", [])) + [int(context.run_id)]
    else:
        if state_path.exists() or (out / "synthetic.csv").exists():
            raise FedcondenseError(f"{out}: already holds a run; pass resume=true to continue "
                                   f"it, or use a new out-dir.")
        seed = s.condense.seed if s.condense.seed is not None else secrets.randbits(62)
        state = {"run_id": f"fc-{context.run_id}", "run_seed": seed,
                 "sessions": [int(context.run_id)]}
    _write_json(state_path, state)
    run_id = str(state["run_id"])
    config = replace(s.condense, seed=int(state["run_seed"]))
    transport = TransportConfig(expected_sites=s.sites, min_sites=s.threshold,
                                timeout=s.stage_timeout, max_attempts=s.max_attempts,
                                node_wait=s.node_wait)
    transport.validate()

    tgrid = TracingGrid(grid, poll_interval=s.reply_poll)
    expected = s.threshold if s.resume else s.sites
    nodes = wait_for_nodes(tgrid, expected, s.node_wait)
    time.sleep(0 if len(nodes) >= s.sites else min(5.0, s.node_wait))  # late joiners
    nodes = sorted(tgrid.get_node_ids())
    records: dict[int, dict[str, Any]] = {}
    session = len(state["sessions"])  # 1, 2, ...: sites refuse requests of older sessions
    sites = handshake(tgrid, nodes, schema.hash(), s.stage_timeout, run_id=run_id,
                      records=records, require_all=False, session=session)
    if len(sites) < s.threshold:
        raise RunStopped(f"run {run_id}: only {len(sites)} sites answered the hello "
                         f"({sorted(sites.values())}); the threshold is {s.threshold}.")
    hello = {sites[n]: records[n] for n in sites}
    if s.resume and ck_path.exists():
        orch = Orchestrator.resume(ck_path, schema, config, None, mode=s.mode,
                                   threshold=s.threshold)
        unknown = set(hello) - set(orch.sites)
        if unknown:
            raise FedcondenseError(f"sites {sorted(unknown)} were not part of run {run_id}.")
    else:
        infos = [SiteInfo(site, int(rec["capacity"]), config.sample_rate)
                 for site, rec in sorted(hello.items())]
        orch = Orchestrator(schema, config, infos, mode=s.mode, threshold=s.threshold)
        orch.resumed_from = 0 if s.resume else None
    next_attempt = reconcile(orch, hello, run_id) if s.resume else {}

    manager = SimpleClientManager()
    for nid in sites:
        manager.register(GridClientProxy(nid, tgrid, tgrid.run.run_id))
    strategy = SumStrategy()
    ctx = LegacyContext(context, config=ServerConfig(num_rounds=config.rounds + 1),
                        strategy=strategy, client_manager=manager)
    transport_log: list[dict[str, Any]] = list(orch.checkpoint_extra.get("transport", []))
    run_info: dict[str, Any] = {
        "command": "deploy", "run_id": run_id, "flower_runs": state["sessions"],
        "config": config_dict(config), "run_seed": orch.run_seed, "schema_hash": schema.hash(),
        "n_sites": len(orch.sites),
        "declared_capacity": {k: v.capacity for k, v in orch.sites.items()},
        "secure_aggregation": True, "noise_mode": s.mode, "threshold": s.threshold,
        "stage_timeout_s": s.stage_timeout, "resumed_from_round": orch.resumed_from,
        "handshake_seconds": time.perf_counter() - t_start, "versions": package_versions()}

    def finish(status: str, message: str = "") -> None:
        privacy = orch.privacy_report()
        privacy.update(status=status, secure_aggregation=True, run_id=run_id,
                       site_ledgers="every site charged its own ledger before answering")
        run_info.update(status=status, message=message, rounds=orch.history,
                        transport=transport_log, wall_seconds=time.perf_counter() - t_start)
        run_info["round_seconds"] = [r["wall_s"] for r in transport_log]
        run_info["stage_seconds_median"] = stage_medians(transport_log)
        if status == "completed":
            write_release(out, orch.synthetic.decode(), privacy, run_info)  # type: ignore[union-attr]
        else:
            _write_json(out / "privacy.json", privacy)
            _write_json(out / "run.json", run_info)
            progress(out, f"run {run_id} {status}: {message}")

    lost: set[str] = set()  # sites that stopped answering (timeouts) in this session
    while not orch.finished():
        online = set(tgrid.get_node_ids())
        targets = {n: site for n, site in sites.items() if n in online and site not in lost}
        if len(targets) < s.threshold:
            msg = (f"run {run_id} stopped before {'init' if orch.needs_init() else 'round'} "
                   f"{orch.rounds_done + (0 if orch.needs_init() else 1)}: only "
                   f"{len(targets)} of {len(orch.sites)} sites online "
                   f"({sorted(targets.values())}), the threshold is {s.threshold}; resume "
                   f"with resume=true when enough sites are back.")
            finish("stopped", msg)
            raise RunStopped(msg)
        t_build = time.perf_counter()
        base = build_message(orch, schema, run_id, transport.clipping_range, session)
        build_s = time.perf_counter() - t_build
        attempt_base = next_attempt.get((base.kind, base.round_index), 0)
        outcome, info = run_round(tgrid, ctx, strategy, base, targets, transport, attempt_base)
        refused = {site: line for site, line in info["errors"].items() if BUDGET_MARK in line}
        timed_out = {site for site, line in info["errors"].items()
                     if site in orch.sites and not line.startswith("site ")}  # unreachable
        if timed_out - lost:
            LOG.warning("run %s: %s stopped answering; dropped for the rest of this session",
                        run_id, sorted(timed_out - lost))
        lost |= timed_out
        sent = [site for site, k in info["charges"].items() if site not in refused
                for _ in range(int(k))]
        contributed = list(info["contributed"]) if outcome is not None else []
        summed = outcome.summed if outcome is not None and contributed else None
        transport_log.append({k: v for k, v in info.items() if k != "errors"}
                             | {"errors": info["errors"]})
        t_apply = time.perf_counter()
        if base.kind == "init":
            if summed is None or not orch.apply_init(summed, sent, contributed):
                why = "; ".join(refused.values()) or "too few sites answered"
                msg = f"run {run_id} stopped at the initialisation: {why}"
                finish("stopped", msg)
                raise RunStopped(msg)
        else:
            orch.apply_round(summed if summed is not None else np.zeros(config.directions),
                             sent, contributed if summed is not None else [],
                             {"wall_s": info["wall_s"], "overhead_s": info["overhead_s"]})
        t_save = time.perf_counter()
        orch.save(ck_path, extra={"run_id": run_id, "transport": transport_log})
        t_line = time.perf_counter()
        eps = orch.privacy_report()["epsilon"]
        progress(out, round_line(base.kind, base.round_index, config.rounds, eps,
                                  config.epsilon if config.private else "inf",
                                  len(contributed), len(targets),
                                  time.perf_counter() - t_build))
        transport_log[-1]["coordinator_s"] = {
            "build": build_s, "apply": t_save - t_apply, "checkpoint": t_line - t_save,
            "progress": time.perf_counter() - t_line}
        if refused:
            msg = (f"run {run_id} stopped after {base.kind} {base.round_index}: "
                   + " | ".join(refused[k] for k in sorted(refused)))
            finish("stopped", msg)
            raise RunStopped(msg)
    finish("completed")
    progress(out, f"run {run_id} completed in {time.perf_counter() - t_start:.0f} s: "
                   f"{out / 'synthetic.csv'}")


def summary_line(out: Path) -> str:
    """One line about a finished or stopped run folder (for scripts)."""
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    privacy = json.loads((out / "privacy.json").read_text(encoding="utf-8"))
    eps = privacy.get("per_site", {})
    worst = max((v for v in eps.values() if isinstance(v, (int, float))), default=math.nan)
    return (f"{run.get('status')}: {len(run.get('rounds', []))} rounds, per-site ε up to "
            f"{worst:.3g}, {run.get('message') or 'release in ' + str(out / 'synthetic.csv')}")
