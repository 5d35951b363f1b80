"""Cost of one deployed SecAgg+ round on loopback (real SuperLink, SuperNodes, ClientApps).

Starts a :class:`~fedcondense.deploy.consortium.LocalConsortium` once and runs the deployed
app under several variants, printing one table row per variant from the coordinator's own
``run.json`` (per-round wall time and the time of each SecAgg+ stage)::

    python -m fedcondense.deploy.bench_round --sites 3 --rounds 2

Variants (see :data:`VARIANTS`): ``before`` — Flower's defaults (SuperExec polls for tasks
every 1 s, the ServerApp's grid pulls replies every 3 s) and a ClientApp module that imports
the site maths at load, as a plain ``make_client_app(CondensationHandler())`` would (every one
of the four per-round ClientApp processes per site pays for it); ``lazy`` — the shipped
``deploy/app`` (Flower and the thin adapter only at load); ``after`` — plus 0.2 s task and
reply polling; ``after-1round`` — the same directions in one round instead of ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from fedcondense.deploy import consortium
from fedcondense.deploy.consortium import LocalConsortium, split_dataset

EAGER_CLIENT = '''"""Eager variant (benchmark only): the site maths is imported when the module loads."""
from fedcondense.client.app import make_client_app
from fedcondense.client.budget_gate import hello_info
from fedcondense.client.site_handler import CondensationHandler

app = make_client_app(CondensationHandler(), hello_info=hello_info)
'''


def _app_variant(eager: bool, root: Path) -> Path:
    if not eager:
        return consortium.APP_DIR
    app = root / "app-eager"
    shutil.copytree(consortium.APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "fedcondense_app" / "client_app.py").write_text(EAGER_CLIENT)
    return app


def _row(name: str, out: Path, wall: float) -> dict[str, Any]:
    run = json.loads((out / "run.json").read_text())
    rounds = [t for t in run["transport"] if t["kind"] == "round"]
    stages: dict[str, list[float]] = {}
    for t in rounds:
        for a in t["attempts"]:
            for k, v in a["stages_s"].items():
                stages.setdefault(k, []).append(v)
    return {"variant": name, "rounds": len(rounds),
            "directions": run["config"]["directions"],
            "round_s": statistics.mean(t["wall_s"] for t in rounds),
            "site_compute_s": statistics.mean(max(t["site_compute_s"].values()) for t in rounds),
            "stages_s": {k: round(statistics.mean(v), 1) for k, v in stages.items()},
            "run_s": wall, "status": run["status"]}


VARIANTS = {
    # name: (SuperExec task poll s, eager ClientApp imports, coordinator reply poll s, one round)
    "before": ("1.0", True, 3.0, False),     # Flower defaults, ClientApp importing everything
    "lazy": ("1.0", False, 3.0, False),      # + lazy ClientApp imports
    "after": ("0.2", False, 0.2, False),     # + 0.2 s task and reply polling
    "after-1round": ("0.2", False, 0.2, True),  # + the same directions in one round
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--directions", type=int, default=64)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--json", type=Path, help="Also write the rows here.")
    args = ap.parse_args(argv)
    names = args.variants.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="fc-bench-") as tmp:
        root = Path(tmp)
        files, schema = split_dataset("heart_disease", args.sites, root / "data")
        for poll in sorted({VARIANTS[n][0] for n in names}, reverse=True):
            env = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": poll}
            with LocalConsortium(root / f"c{poll}", files, schema, env=env) as c:
                c.start_link()
                c.register_sites()
                c.start_sites(list(files))
                for name in [n for n in names if VARIANTS[n][0] == poll]:
                    _, eager, reply_poll, one = VARIANTS[name]
                    out = root / f"out-{name}"
                    cfg = {"schema-path": str(schema), "out-dir": str(out),
                           "sites": args.sites, "rounds": 1 if one else args.rounds,
                           "init": "random", "rows": 4, "models": "logistic_regression",
                           "directions": args.directions * (args.rounds if one else 1),
                           "sample-rate": 0.5, "epsilon": 1.0, "reply-poll": reply_poll}
                    saved = consortium.APP_DIR
                    consortium.APP_DIR = _app_variant(eager, root)
                    try:
                        t0 = time.monotonic()
                        rid = c.submit(cfg)
                        c.wait(rid, timeout=900)
                        rows.append(_row(name, out, time.monotonic() - t0))
                    finally:
                        consortium.APP_DIR = saved
                    print(json.dumps(rows[-1]), flush=True)
    print("\n| variant | rounds × P | mean round s | site compute s | stages s | run s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['rounds']} × {r['directions']} | {r['round_s']:.1f} | "
              f"{r['site_compute_s']:.1f} | {r['stages_s']} | {r['run_s']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
