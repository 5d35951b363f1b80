"""The coordinator of a deployed run: the ``ServerApp`` main behind ``flwr run deploy/app``.

:func:`coordinate` reads the run config (:class:`DeploySettings`), waits for the sites, says
hello (protocol version, schema hash, run id; each site answers with its record count and
the ledger keys it already charged for this run), then runs the
:class:`~fedcondense.server.orchestrator.Orchestrator` over SecAgg+ round by round:

* every request carries the declared privacy plan, so each site prices it with its own
  ledger (:mod:`fedcondense.protocol.privacy.site_budget`); a site that refuses for budget reasons
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
from typing import Any, NoReturn

from ..protocol.condensation.condenser import CondenseConfig
from ..protocol.condensation.federation import NoiseMode
from ..protocol.data.schema import Schema
from ..protocol.errors import FedcondenseError
from ..protocol.wire.messages import RoundMessage
from .orchestrator import Orchestrator, SiteInfo
from .round_driver import RoundLoop, RunStopped, drive, open_loop
from .run_progress import progress, round_line, route_flower_logs, stage_medians

LOG = logging.getLogger("fedcondense.coordinator")
STATE_FILE = "coordinator.json"
CHECKPOINT_FILE = "checkpoint.npz"
REPLY_POLL_S = 0.1
"""Seconds between the coordinator's pulls for replies (Flower's own grid waits 3 s)."""


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
    from ..protocol.data.atomic_file import atomic_write_text
    from ..protocol.release.release import dumps

    atomic_write_text(path, dumps(obj))


def _settings(context: Any) -> tuple[DeploySettings, Schema]:
    """The run config as settings (``rows = 0``: ``simulate``'s default for this table)."""
    s = DeploySettings.from_run_config(context.run_config)
    schema = Schema.load(s.schema_path)
    if s.condense.rows <= 0:
        from ..protocol.condensation.synthetic_set import resolve_rows

        s = replace(s, condense=replace(s.condense, rows=resolve_rows(schema, None, None)))
    return s, schema


def _session_state(s: DeploySettings, context: Any) -> dict[str, Any]:
    """``coordinator.json``: the run id, seed and Flower runs (sessions), written first."""
    out, state_path = s.out_dir, s.out_dir / STATE_FILE
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
    return state


def _hello(tgrid: Any, s: DeploySettings, schema: Schema, run_id: str,
           session: int) -> tuple[dict[int, str], dict[str, dict[str, Any]]]:
    """Wait for the sites, say hello; ``(node → site, site → its hello record)``."""
    from .secure_sum import handshake, wait_for_nodes

    nodes = wait_for_nodes(tgrid, s.threshold if s.resume else s.sites, s.node_wait)
    time.sleep(0 if len(nodes) >= s.sites else min(5.0, s.node_wait))  # late joiners
    records: dict[int, dict[str, Any]] = {}
    sites = handshake(tgrid, sorted(tgrid.get_node_ids()), schema.hash(), s.stage_timeout,
                      run_id=run_id, records=records, require_all=False, session=session)
    if len(sites) < s.threshold:
        raise RunStopped(f"run {run_id}: only {len(sites)} sites answered the hello "
                         f"({sorted(sites.values())}); the threshold is {s.threshold}.")
    return sites, {sites[n]: records[n] for n in sites}


def _orchestrator(s: DeploySettings, schema: Schema, config: CondenseConfig, run_id: str,
                  hello: Mapping[str, Mapping[str, Any]]) -> Orchestrator:
    """A new orchestrator over the sites that said hello, or the checkpointed one."""
    ck_path = s.out_dir / CHECKPOINT_FILE
    if s.resume and ck_path.exists():
        orch = Orchestrator.resume(ck_path, schema, config, None, mode=s.mode,
                                   threshold=s.threshold, noise_seeded=False)
        unknown = set(hello) - set(orch.sites)
        if unknown:
            raise FedcondenseError(f"sites {sorted(unknown)} were not part of run {run_id}.")
        return orch
    infos = [SiteInfo(site, int(rec["capacity"]), config.sample_rate)
             for site, rec in sorted(hello.items())]
    orch = Orchestrator(schema, config, infos, mode=s.mode, threshold=s.threshold,
                        noise_seeded=False)
    orch.resumed_from = 0 if s.resume else None
    return orch


def coordinate(grid: Any, context: Any) -> None:
    """``ServerApp`` main: one deployed fedcondense run (or its resumption)."""
    from .transport_trace import TracingGrid

    t_start = time.perf_counter()
    s, schema = _settings(context)
    s.out_dir.mkdir(parents=True, exist_ok=True)
    route_flower_logs(s.out_dir)
    state = _session_state(s, context)
    run_id = str(state["run_id"])
    config = replace(s.condense, seed=int(state["run_seed"]))
    tgrid = TracingGrid(grid, poll_interval=s.reply_poll)
    session = len(state["sessions"])  # 1, 2, ...: sites refuse requests of older sessions
    sites, hello = _hello(tgrid, s, schema, run_id, session)
    orch = _orchestrator(s, schema, config, run_id, hello)
    next_attempt = reconcile(orch, hello, run_id) if s.resume else {}
    from .secure_sum import TransportConfig

    transport = TransportConfig(expected_sites=s.sites, min_sites=s.threshold,
                                timeout=s.stage_timeout, max_attempts=s.max_attempts,
                                node_wait=s.node_wait)
    loop = open_loop(context, tgrid, orch, schema, run_id, sites, transport, s.threshold,
                     session=session, next_attempt=next_attempt,
                     transport_log=orch.checkpoint_extra.get("transport", []))
    run = DeployedRun(s.out_dir, loop, t_start, {
        "run_id": run_id, "flower_runs": state["sessions"],
        "declared_capacity": {k: v.capacity for k, v in orch.sites.items()},
        "noise_mode": s.mode, "threshold": s.threshold, "stage_timeout_s": s.stage_timeout,
        "resumed_from_round": orch.resumed_from,
        "handshake_seconds": time.perf_counter() - t_start})
    drive(loop, run.after_round, run.stop)
    run.finish("completed")
    progress(s.out_dir, f"run {run_id} completed in {time.perf_counter() - t_start:.0f} s: "
                        f"{s.out_dir / 'synthetic.csv'}")


@dataclass
class DeployedRun:
    """What the deployed coordinator writes as a run goes: checkpoints, progress lines and,
    at the end, the release or the stopped run's ``privacy.json`` and ``run.json``."""

    out: Path
    loop: RoundLoop
    t_start: float
    run_info: dict[str, Any]

    def after_round(self, base: RoundMessage, info: dict[str, Any], n_targets: int,
                    seconds: dict[str, float]) -> None:
        """Checkpoint, one progress line, and the coordinator's own stage seconds."""
        orch, log = self.loop.orch, self.loop.transport_log
        t_save = time.perf_counter()
        orch.save(self.out / CHECKPOINT_FILE, extra={"run_id": self.loop.run_id,
                                                     "transport": log})
        t_line = time.perf_counter()
        eps = orch.epsilon_spent()
        config = orch.config
        progress(self.out, round_line(base.kind, base.round_index, config.rounds, eps,
                                      config.epsilon if config.private else "inf",
                                      len(info["contributed"]), n_targets,
                                      time.perf_counter() - seconds["started"]))
        log[-1]["coordinator_s"] = {
            "build": seconds["build"], "apply": seconds["apply"], "checkpoint": t_line - t_save,
            "progress": time.perf_counter() - t_line}

    def finish(self, status: str, message: str = "") -> None:
        """Write the release (completed) or the stopped run's reports."""
        from ..protocol.release.release import write_release
        from ..protocol.release.reports import run_report

        orch, log = self.loop.orch, self.loop.transport_log
        privacy = orch.privacy_report()
        privacy.update(status=status, secure_aggregation=True, run_id=self.loop.run_id,
                       site_ledgers="every site charged its own ledger before answering")
        run = run_report(
            command="deploy", config=orch.config, schema=self.loop.schema,
            run_seed=orch.run_seed, private=privacy["private"], n_sites=len(orch.sites),
            secure_aggregation=True, wall_seconds=time.perf_counter() - self.t_start,
            rounds=orch.history, **self.run_info, status=status, message=message,
            transport=log, round_seconds=[r["wall_s"] for r in log],
            stage_seconds_median=stage_medians(log))
        if status == "completed":
            write_release(self.out, orch.synthetic.decode(), privacy, run)  # type: ignore[union-attr]
        else:
            _write_json(self.out / "privacy.json", privacy)
            _write_json(self.out / "run.json", run)
            progress(self.out, f"run {self.loop.run_id} {status}: {message}")

    def stop(self, message: str) -> NoReturn:
        """Write the stopped run's reports and raise :class:`RunStopped`."""
        self.finish("stopped", message)
        raise RunStopped(message)


def summary_line(out: Path) -> str:
    """One line about a finished or stopped run folder (for scripts)."""
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    privacy = json.loads((out / "privacy.json").read_text(encoding="utf-8"))
    eps = privacy.get("per_site", {})
    worst = max((v for v in eps.values() if isinstance(v, (int, float))), default=math.nan)
    return (f"{run.get('status')}: {len(run.get('rounds', []))} rounds, per-site ε up to "
            f"{worst:.3g}, {run.get('message') or 'release in ' + str(out / 'synthetic.csv')}")
