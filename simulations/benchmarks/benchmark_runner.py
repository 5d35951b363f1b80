"""Run a benchmark grid into ``OUT/results.csv`` (resumable) and describe it in
``OUT/benchmark.json``; the report and plots are then made from those two files.

Run from the command line as ``fedcondense benchmark`` (see ``cli/benchmark_commands.py``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ...protocol.data.atomic_file import atomic_write_text
from ..evaluation.baselines import available_baselines
from .benchmark_grid import GridSpec, Job, ResultsFile, fmt_eps, grid_jobs, pending
from .benchmark_releases import Split, load_split, make_release
from .benchmark_scoring import score_release, score_subgroups

RESULTS, META, SUBGROUPS = "results.csv", "benchmark.json", "subgroups.csv"
SUBGROUP_COLUMNS = ("dataset", "method", "trained_with", "epsilon", "seed", "subgroup", "level",
                    "n_test", "family", "source", "metric", "value")


@dataclass
class RunPlan:
    """The jobs of a grid, which are already done, and the baselines that cannot run."""

    jobs: list[Job]
    todo: list[Job]
    availability: dict[str, str]


def plan_run(spec: GridSpec, out: Path, baselines_python: str | None = None) -> RunPlan:
    """Jobs still to do in ``out`` (jobs of baselines that are not installed are left out)."""
    spec.validate()
    avail = available_baselines(baselines_python)
    jobs = [j for j in grid_jobs(spec)
            if j.method not in avail or avail[j.method].startswith("available")]
    results = ResultsFile(out / RESULTS)
    return RunPlan(jobs, list(pending(jobs, results.done())), avail)


def write_meta(spec: GridSpec, out: Path, plan: RunPlan, baselines_python: str | None) -> None:
    """``benchmark.json``: the grid, what was available, the evaluation families."""
    meta = {"grid": {**asdict(spec), "epsilons": [fmt_eps(e) for e in spec.epsilons]},
            "description": spec.describe(), "baselines": plan.availability,
            "baselines_python": baselines_python,
            "evaluated_with": {d: spec.evaluated_with(d) for d in spec.datasets},
            "jobs": len(plan.jobs)}
    old = out / META
    if old.exists():  # keep the wall time of earlier (interrupted) sessions
        meta["seconds"] = json.loads(old.read_text()).get("seconds", 0.0)
    atomic_write_text(old, json.dumps(meta, indent=2) + "\n")


def add_seconds(out: Path, seconds: float) -> None:
    path = out / META
    meta = json.loads(path.read_text())
    meta["seconds"] = round(float(meta.get("seconds", 0.0)) + seconds, 1)
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


def run_jobs(spec: GridSpec, out: Path, plan: RunPlan, baselines_python: str | None = None,
             on_job: Callable[[Job, list[dict[str, object]]], None] | None = None) -> int:
    """Produce and score every pending job, appending its rows as soon as they exist."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    results = ResultsFile(out / RESULTS)
    splits: dict[str, Split] = {}
    for job in plan.todo:
        if job.dataset not in splits:
            splits[job.dataset] = load_split(job.dataset)
        split = splits[job.dataset]
        t0 = time.perf_counter()
        try:
            release = make_release(job, split, spec.delta, spec.rounds, baselines_python)
            families = spec.evaluated_with(job.dataset)
            rows = score_release(job, release, split, families, time.perf_counter() - t0)
            if job.method != "full_real":  # the full table is every subgroup row's reference
                _append_subgroups(out / SUBGROUPS, score_subgroups(job, release, split,
                                                                   families[0]))
        except Exception as exc:  # one failing generator must not stop the grid
            why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            rows = [{"dataset": job.dataset, "method": job.method,
                     "trained_with": job.trained_with, "epsilon": job.epsilon, "seed": job.seed,
                     "eval_family": "", "score": math.nan,
                     "seconds": round(time.perf_counter() - t0, 2), "status": f"failed: {why}"}]
        results.append(rows)
        if on_job is not None:
            on_job(job, rows)
    return len(plan.todo)


def _append_subgroups(path: Path, rows: list[dict[str, object]]) -> None:
    """Append subgroup rows (written before the job's results rows, so a job is only "done"
    once both exist; a job redone after an interruption repeats rows the report de-duplicates)."""
    if not rows:
        return
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(SUBGROUP_COLUMNS))
        if new:
            writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in SUBGROUP_COLUMNS} for r in rows)
