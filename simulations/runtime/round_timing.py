"""Where a simulated federated round's time goes: fit, predict, privacy, framework.

How the figures are collected (simulation only): every simulated site runs
:class:`TimedSiteHandler`, which answers exactly as the deployed
:class:`~fedcondense.client.site_handler.CondensationHandler` and then appends its own timings
(``fit``, ``predict``, ``privacy`` seconds of that answer) as one JSON line to a file in a
local folder of this machine, one file per process (Ray actors are separate processes).
After the run the driver reads them (:func:`read_site_timings`). Nothing travels through
Flower or SecAgg+ — the timings are a simulation's own measurement, never a message; a
deployed site keeps its split to itself.

:func:`round_split` joins them with the server's per-round wall time:

* ``fit_s``, ``predict_s``, ``privacy_s`` — summed over the round's sites (compute seconds; a
  site whose process already held the round's public fits spends ~0 on ``fit``);
  ``fit_cpu_s`` — the CPU time of the fitting thread(s) (the fair figure on a busy machine);
* ``site_s`` — the compute on the round's critical path: the sum over sites when they run in
  turn in one process (the default, which shares the fits), else the slowest site's total;
* ``framework_s = wall_s − site_s`` — Flower, Ray, SecAgg+ masking and unmasking, messages;
* ``fits`` — how many sites fitted the round's models (1 when they share one process);
* ``threads`` — the most intra-op threads a site process computed with (the run's plan,
  :mod:`fedcondense.simulations.runtime.compute_plan`).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...client import site_handler
from ...client.site_handler import CondensationHandler
from ...protocol.wire.messages import RoundMessage
from .compute_plan import apply_threads, current_threads

PARTS = ("fit", "predict", "privacy")


@dataclass(frozen=True)
class TimedSiteHandler(CondensationHandler):
    """The site handler of a simulation, logging its timings to ``timing_dir`` (this machine).

    ``threads`` (> 0): the run's :class:`~fedcondense.simulations.runtime.compute_plan.ComputePlan`
    thread count, put into effect in whichever process (Ray actor) answers, before it fits.
    """

    timing_dir: str = ""
    threads: int = 0

    def __call__(self, message: RoundMessage, node_config: Mapping[str, Any]) -> np.ndarray:
        if self.threads > 0:
            apply_threads(self.threads)
        fitted_before = site_handler._CACHE.misses
        vector, timings = self.answer(message, node_config)
        if self.timing_dir and message.kind == "round":
            line = {"site": str(node_config["site-id"]), "round": int(message.round_index),
                    "attempt": int(message.attempt), "pid": os.getpid(),
                    "fitted": site_handler._CACHE.misses - fitted_before,
                    "threads": current_threads(),
                    "fit_cpu": float(timings.get("fit_cpu", 0.0)),
                    **{k: float(timings.get(k, 0.0)) for k in PARTS}}
            path = Path(self.timing_dir) / f"site-timings-{os.getpid()}.jsonl"
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        return vector


def read_site_timings(timing_dir: str | Path) -> dict[int, dict[str, dict[str, float]]]:
    """``{round: {site: {fit, predict, privacy, fitted, attempt, pid, threads}}}``
    (``fitted``: 1 if that site fitted the round's models, 0 if its process already held them;
    a retried round: the last attempt)."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for path in sorted(Path(timing_dir).glob("site-timings-*.jsonl")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(raw)
            sites = out.setdefault(int(rec["round"]), {})
            prev = sites.get(rec["site"])
            if prev is None or rec["attempt"] >= prev["attempt"]:
                sites[rec["site"]] = {k: rec[k] for k in (*PARTS, "fitted", "attempt", "pid")}
                sites[rec["site"]]["threads"] = int(rec.get("threads", 0))
                sites[rec["site"]]["fit_cpu"] = float(rec.get("fit_cpu", 0.0))
    return out


def round_split(wall_s: float, sites: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The split of one round from its wall time and its sites' timings (see module doc)."""
    split = {f"{k}_s": float(sum(s[k] for s in sites.values())) for k in PARTS}
    split["fit_cpu_s"] = float(sum(s.get("fit_cpu", 0.0) for s in sites.values()))
    totals = [sum(s[k] for k in PARTS) for s in sites.values()]
    sequential = len({s.get("pid") for s in sites.values()}) <= 1
    site_s = float(sum(totals) if sequential else max(totals, default=0.0))
    split.update({"site_s": site_s, "framework_s": max(0.0, float(wall_s) - site_s),
                  "wall_s": float(wall_s), "sites": len(sites),
                  "fits": int(sum(s.get("fitted", 1) for s in sites.values())),
                  "threads": int(max((s.get("threads", 0) for s in sites.values()), default=0))})
    return split


def split_totals(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Sums of the per-round splits (``rows[i]["time_split_s"]``) and the site-compute share."""
    splits = [r["time_split_s"] for r in rows if r.get("time_split_s")]
    keys = ("fit_s", "predict_s", "privacy_s", "site_s", "framework_s", "wall_s")
    out = {k: float(sum(s[k] for s in splits)) for k in keys}
    out["site_compute_share"] = out["site_s"] / out["wall_s"] if out["wall_s"] > 0 else 0.0
    return out


def split_table(rows: Sequence[Mapping[str, Any]], title: str) -> Any:
    """A rich table: median round, first round and all rounds, per part of the split."""
    from rich.table import Table

    splits = [r["time_split_s"] for r in rows if r.get("time_split_s")]
    keys = ("fit_s", "predict_s", "privacy_s", "site_s", "framework_s", "wall_s")
    table = Table(title=title, caption="seconds; sites = site compute on the critical path, "
                  "framework = wall − sites (Flower, Ray, SecAgg+)")
    table.add_column("rounds")
    for k in keys:
        table.add_column(k.removesuffix("_s").replace("site", "sites"), justify="right")
    table.add_column("sites %", justify="right")

    def add(label: str, vals: dict[str, float]) -> None:
        share = vals["site_s"] / vals["wall_s"] if vals["wall_s"] > 0 else 0.0
        table.add_row(label, *(f"{vals[k]:.3f}" for k in keys), f"{share:.0%}")

    if splits:
        add("first", splits[0])
        add("median", {k: statistics.median(s[k] for s in splits) for k in keys})
        add(f"all {len(splits)}", split_totals(rows))
    return table


def central_split(totals: Mapping[str, float], history: Sequence[dict[str, Any]],
                  wall_s: float, evaluations_per_round: int) -> dict[str, float]:
    """``condense``'s split: the condenser's totals plus ``framework_s`` (everything else of
    the wall time: initialisation, accounting, the loop itself); each history row gets its
    ``time_split_s`` and ``function_evaluations_per_second`` from its own timings."""
    for row in history:
        if "fit_s" in row:
            site = row["fit_s"] + row["predict_s"] + row["privacy_s"]
            row["time_split_s"] = {"fit_s": row["fit_s"],
                                   "fit_cpu_s": row.get("fit_cpu_s", 0.0),
                                   "predict_s": row["predict_s"],
                                   "privacy_s": row["privacy_s"], "site_s": site,
                                   "framework_s": max(0.0, row["seconds"] - site),
                                   "wall_s": row["seconds"]}
            row["function_evaluations_per_second"] = evaluations_per_round / max(
                row["seconds"], 1e-9)
    out = {f"{k}_s": float(v) for k, v in totals.items()}
    work = sum(out.get(f"{k}_s", 0.0) for k in PARTS)
    out.update({"site_s": work, "framework_s": max(0.0, wall_s - sum(out.values())),
                "wall_s": float(wall_s)})
    out["site_compute_share"] = work / wall_s if wall_s > 0 else 0.0
    return out
