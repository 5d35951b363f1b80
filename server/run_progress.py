"""What a deployed coordinator tells its operator: one line per round, Flower's lines to a file.

* :func:`round_line` / :func:`progress` — ``round  12/100  ε 0.412/1  3/3 sites  4.8 s`` on the
  ServerApp's output (``flwr log RUN_ID``) and appended to ``OUT/progress.log``;
* :func:`route_flower_logs` — Flower's own per-stage INFO lines go to ``OUT/flower.log``;
* :func:`stage_medians` — the median seconds of each coordinator-side stage for ``run.json``.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any


def route_flower_logs(out: Path) -> Path:
    """Flower's own log lines go to ``OUT/flower.log``; its console handler keeps warnings.

    The operator then sees one line per round (:func:`round_line`) instead of Flower's
    per-stage INFO lines (``flwr log RUN`` / the SuperLink log).
    """
    from flwr.supercore.logger import update_console_handler

    path = out / "flower.log"
    flwr_logger = logging.getLogger("flwr")
    for old in [h for h in flwr_logger.handlers if getattr(h, "fedcondense_run", False)]:
        flwr_logger.removeHandler(old)  # an earlier run in this process (tests)
        old.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.fedcondense_run = True  # type: ignore[attr-defined]
    flwr_logger.addHandler(handler)
    update_console_handler(level=logging.WARNING)
    return path


def round_line(kind: str, index: int, total: int, eps: float | str, eps_target: float | str,
               answered: int, asked: int, seconds: float) -> str:
    """One progress line: ``round  12/100  ε 0.412/1  3/3 sites  4.8 s``."""
    what = "init" if kind == "init" else f"round {index:>{len(str(total))}}/{total}"
    spent = f"{eps:.3g}" if isinstance(eps, (int, float)) else str(eps)
    target = f"{eps_target:g}" if isinstance(eps_target, (int, float)) else str(eps_target)
    return f"{what}  ε {spent}/{target}  {answered}/{asked} sites  {seconds:.1f} s"


def progress(out: Path, line: str) -> None:
    """Print a progress line (the ServerApp's output: ``flwr log``) and append it to
    ``OUT/progress.log``."""
    print(line, flush=True)
    with open(out / "progress.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def stage_medians(transport: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds per coordinator-side stage over the optimisation rounds (``run.json``)."""
    stages: dict[str, list[float]] = {}
    for t in transport:
        if t.get("kind") != "round":
            continue
        for a in t.get("attempts", []):
            for k, v in a.get("stages_s", {}).items():
                stages.setdefault(k, []).append(float(v))
        for k, v in (t.get("coordinator_s") or {}).items():
            stages.setdefault(f"coordinator_{k}", []).append(float(v))
        stages.setdefault("round", []).append(float(t["wall_s"]) + sum(
            float(v) for v in (t.get("coordinator_s") or {}).values()))
    return {k: statistics.median(v) for k, v in stages.items()}
