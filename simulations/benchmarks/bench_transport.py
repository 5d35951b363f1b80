"""Per-round cost of the secure-sum transport: SecAgg+ vs plain, K sites, P values.

Each configuration runs ``--rounds`` rounds of :class:`DemoHandler` vectors through
:func:`simulate_transport` and reports, over rounds 2.. (round 1 pays actor start-up):
median round wall time, median framework overhead (wall − slowest site's compute), the
largest |secure − exact| over all coordinates and rounds, and the stated bound
``n·2·clipping_range·scale/2**22``.

Usage: ``python -m fedcondense.simulations.benchmarks.bench_transport [--backend ray|local|both]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...server.secure_sum import TransportConfig
from ..runtime.federated_run import (
    DemoHandler,
    demo_rounds,
    demo_vector,
    simulate_transport,
)

HASH = "bench-schema"


def bench_one(backend: str, n: int, dim: int, secure: bool, rounds: int,
              delay_s: float, scale: float) -> dict[str, Any]:
    """Run one configuration; return its row of the table."""
    make_round = demo_rounds(HASH, dim, scale=scale)
    errors: list[float] = []
    bounds: list[float] = []

    def on_sum(t: int, summed: np.ndarray | None, k: int, info: dict[str, Any]) -> None:
        seed = make_round(t).round_seed
        exact = np.zeros(dim)
        for s in sorted(info["contributed"]):
            exact = exact + demo_vector(s, seed, dim)
        if summed is not None:
            errors.append(float(np.max(np.abs(summed - exact))))
            bounds.append(float(info["quantisation_bound"]))

    t0 = time.perf_counter()
    report = simulate_transport(DemoHandler(delay_s=delay_s), make_round, on_sum,
                                rounds=rounds, config=TransportConfig(n, secure_aggregation=secure),
                                schema_hash=HASH, backend=backend)
    total = time.perf_counter() - t0
    later = report.rounds[1:] or report.rounds
    return {
        "backend": backend, "sites": n, "P": dim, "mode": "secagg+" if secure else "plain",
        "round_s": statistics.median(r["wall_s"] for r in later),
        "overhead_s": statistics.median(r["overhead_s"] for r in later),
        "first_round_s": report.rounds[0]["wall_s"], "startup_s": report.handshake_s,
        "total_s": total, "max_err": max(errors) if errors else float("nan"),
        "bound": max(bounds) if bounds else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the benchmark table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("ray", "local", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sites", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--delay-ms", type=float, default=0.0, help="simulated site compute")
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args(argv)
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    logging.getLogger("flwr").setLevel(logging.ERROR)
    logging.getLogger("fedcondense").setLevel(logging.ERROR)
    backends = ["local", "ray"] if args.backend == "both" else [args.backend]
    rows = []
    for backend in backends:
        for n in args.sites:
            for dim in args.dims:
                for secure in (True, False):
                    rows.append(bench_one(backend, n, dim, secure, args.rounds,
                                          args.delay_ms / 1000, args.scale))
                    logging.getLogger("flwr").setLevel(logging.ERROR)
    head = (f"{'backend':7} {'sites':>5} {'P':>4} {'mode':8} {'round s':>8} {'overhead s':>10} "
            f"{'1st rnd s':>9} {'startup s':>9} {'max|err|':>9} {'bound':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['backend']:7} {r['sites']:>5} {r['P']:>4} {r['mode']:8} {r['round_s']:8.3f} "
              f"{r['overhead_s']:10.3f} {r['first_round_s']:9.3f} {r['startup_s']:9.2f} "
              f"{r['max_err']:9.2e} {r['bound']:9.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
