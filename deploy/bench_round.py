"""Cost of a deployed SecAgg+ round on loopback (real SuperLink, SuperNodes, site daemons).

Starts a :class:`~fedcondense.deploy.consortium.LocalConsortium` (TLS, node authentication,
``fedcondense site start`` per site) for each variant, runs the deployed app and prints one
table row per variant from the coordinator's own ``run.json``: median and mean round time and
the median time of each coordinator-side stage (the four SecAgg+ exchanges, the hello, the
coordinator's own work between rounds)::

    python -m fedcondense.deploy.bench_round                     # both variants
    python -m fedcondense.deploy.bench_round --variants warm --rounds 100   # a 100-round job

Variants: ``flower`` — Flower's own executor (a fresh ``flwr-clientapp`` process per message,
SuperNode sleeps 3 s / 0.5 s, ``FEDCONDENSE_SITE_EXECUTOR=flower``); ``warm`` — the site's warm
executor and the paced SuperNode (:mod:`fedcondense.deploy.flower_pins`), the default; both
with the SuperLink's state in memory (Flower's default); ``warm-disk`` — ``warm`` with the
SuperLink's state in an SQLite database (``--database``, kept across SuperLink restarts).
Defaults: 3 sites, breast cancer split IID, logistic regression + decision tree, P = 64,
20 rounds (``--flower-rounds`` for the slow variant, default 3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from .consortium import LocalConsortium, split_dataset

VARIANTS = {"flower": ("flower", "memory"), "warm": ("warm", "memory"),
            "warm-disk": ("warm", "disk")}
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of every live process under this one, including the
    children they already reaped (the ServerApp, ``flwr`` CLI calls, ClientApp processes)."""
    from .processes import descendants

    total = os.times().children_user + os.times().children_system
    for pid in descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / _TICK  # utime stime cutime cstime
    return total
"""Variant name → (``FEDCONDENSE_SITE_EXECUTOR``, the SuperLink's state)."""


def _row(name: str, out: Path, wall: float, startup: float, cpu: float) -> dict[str, Any]:
    run = json.loads((out / "run.json").read_text())
    rounds = [t for t in run["transport"] if t["kind"] == "round"]
    medians = run.get("stage_seconds_median", {})
    walls = [t["wall_s"] + sum((t.get("coordinator_s") or {}).values()) for t in rounds]
    return {"variant": name, "rounds": len(rounds), "directions": run["config"]["directions"],
            "median_round_s": statistics.median(walls), "mean_round_s": statistics.mean(walls),
            "max_round_s": max(walls),
            "stages_s": {k: round(v, 2) for k, v in medians.items() if k != "round"},
            "handshake_s": round(run.get("handshake_seconds", float("nan")), 1),
            "startup_s": round(startup, 1), "run_s": round(wall, 1), "status": run["status"],
            "cpu_s_per_round": round(cpu / max(len(rounds), 1), 2),
            "load": os.getloadavg()[0]}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--flower-rounds", type=int, default=3,
                    help="Rounds for the slow 'flower' variant (each costs ~45 s).")
    ap.add_argument("--directions", type=int, default=64)
    ap.add_argument("--dataset", default="breast_cancer")
    ap.add_argument("--models", default="logistic_regression,decision_tree")
    ap.add_argument("--variants", default="flower,warm,warm-disk",
                    help=f"Comma-separated, of: {', '.join(VARIANTS)}.")
    ap.add_argument("--json", type=Path, help="Also write the rows here.")
    ap.add_argument("--work", type=Path, help="Keep the consortia (logs) here instead of a "
                    "temporary folder.")
    args = ap.parse_args(argv)
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fc-bench-") as tmp:
        root = args.work.resolve() if args.work else Path(tmp)
        files, schema = split_dataset(args.dataset, args.sites, root / "data")
        for name in args.variants.split(","):
            t0 = time.monotonic()
            executor, link_state = VARIANTS[name]
            env = {"FEDCONDENSE_SITE_EXECUTOR": executor}
            with LocalConsortium(root / f"c-{name}", files, schema, env=env,
                                 link_state=link_state) as c:
                c.start_link()
                c.register_sites()
                c.start_sites(list(files))
                out = root / f"out-{name}"
                cfg = {"schema-path": str(schema), "out-dir": str(out), "sites": args.sites,
                       "rounds": args.flower_rounds if name == "flower" else args.rounds,
                       "directions": args.directions, "models": args.models,
                       "epsilon": 1.0}
                cpu0 = tree_cpu_seconds()
                rid = c.submit(cfg)
                t_run = time.monotonic()
                c.wait(rid, timeout=3600, out=out)
                rows.append(_row(name, out, time.monotonic() - t_run, t_run - t0,
                                 tree_cpu_seconds() - cpu0))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| variant | rounds × P | median / mean / max round s | per-stage median s | "
          "hello s | start-up s | run s | CPU s / round | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['rounds']} × {r['directions']} | "
              f"{r['median_round_s']:.1f} / {r['mean_round_s']:.1f} / {r['max_round_s']:.1f} | "
              f"{r['stages_s']} | {r['handshake_s']} | {r['startup_s']} | {r['run_s']:.0f} | "
              f"{r['cpu_s_per_round']} | {r['load']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
