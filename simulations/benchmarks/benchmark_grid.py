"""The benchmark grid and its resumable results file (one CSV row per run and evaluation family).

A *job* is one release to score: the full training table, a random real subset, a condensed
set (condensed with one model family or with the default portfolio) or a DP synthetic-data
baseline, for one dataset, privacy level ε and seed. :func:`grid_jobs` lists the jobs of a
:class:`GridSpec`; :class:`ResultsFile` appends each job's rows as soon as they exist, so an
interrupted benchmark continues where it stopped and a finished one re-runs nothing.

The full grid is the issue's grid: every bundled dataset × ε ∈ {0.5, 1, 2, 8, ∞} × condensing
family (each family of the task plus the default portfolio) × 3 seeds, next to MST, AIM and the
built-in ``dp_gaussian`` at the same ε. :data:`QUICK` is a small grid that fits in about
15 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...protocol.errors import FedcondenseError
from ...protocol.families import families_for_task
from ..evaluation.datasets import DATASETS

PORTFOLIO = "portfolio"
REFERENCE_METHODS = ("full_real", "random_subset")
BASELINE_METHODS = ("dp_gaussian", "mst", "aim")
KEY = ("dataset", "method", "trained_with", "epsilon", "seed")
COLUMNS = ("dataset", "task", "method", "trained_with", "epsilon", "seed", "eval_family",
           "metric", "score", "integrated_brier", "mia_auc", "mia_ci_low", "mia_ci_high",
           "dcr_auc", "dcr_ci_low", "dcr_ci_high", "exact_copies", "near_copies",
           "release_rows", "seconds", "status")


@dataclass(frozen=True)
class GridSpec:
    """What to run. ``rounds=None`` keeps the condenser's default number of rounds.

    ``baseline_seeds`` limits a (slow) baseline to some of the seeds, e.g. ``{"aim": (0,)}``.
    """

    datasets: tuple[str, ...]
    epsilons: tuple[float, ...]
    families: tuple[str, ...]
    seeds: tuple[int, ...]
    baselines: tuple[str, ...] = BASELINE_METHODS
    rounds: int | None = None
    delta: float = 1e-5
    name: str = "custom"
    eval_families: dict[str, tuple[str, ...]] = field(default_factory=dict)
    baseline_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def seeds_for(self, baseline: str) -> tuple[int, ...]:
        """Seeds a baseline runs with (all the grid's seeds unless limited)."""
        limit = self.baseline_seeds.get(baseline)
        return self.seeds if limit is None else tuple(s for s in self.seeds if s in limit)

    def validate(self) -> None:
        for d in self.datasets:
            if d not in DATASETS:
                raise FedcondenseError(f"--datasets: unknown dataset '{d}'; choose from "
                                       f"{', '.join(DATASETS)}.")
        known = {PORTFOLIO, *families_for_task("classification"), *families_for_task("survival")}
        for f in self.families:
            if f not in known:
                raise FedcondenseError(f"--families: unknown family '{f}'; choose from "
                                       f"{', '.join(sorted(known))}.")
        for e in self.epsilons:
            if math.isnan(e) or e <= 0:
                raise FedcondenseError(f"--epsilons: {e} is not a privacy level; give numbers "
                                       "> 0 or 'inf'.")
        for b in self.baselines:
            if b not in BASELINE_METHODS:
                raise FedcondenseError(f"--baselines: unknown baseline '{b}'; choose from "
                                       f"{', '.join(BASELINE_METHODS)}.")
        if not self.seeds:
            raise FedcondenseError("--seeds must be at least 1.")
        if self.rounds is not None and self.rounds < 1:
            raise FedcondenseError("--rounds must be at least 1.")

    def families_for(self, dataset: str) -> list[str]:
        """Condensing families that apply to ``dataset``'s task (the portfolio always does)."""
        task_fams = families_for_task(DATASETS[dataset].task)
        return [f for f in self.families if f == PORTFOLIO or f in task_fams]

    def evaluated_with(self, dataset: str) -> list[str]:
        """Families every release of ``dataset`` is evaluated with (default: all of the task)."""
        task = DATASETS[dataset].task
        return list(self.eval_families.get(task, ())) or families_for_task(task)

    def describe(self) -> str:
        rounds = "condenser default" if self.rounds is None else str(self.rounds)
        limited = ""
        for b in self.baselines:
            seeds = self.seeds_for(b)
            if seeds != self.seeds:
                limited += (f" ({b} seed{'s' if len(seeds) != 1 else ''} "
                            f"{', '.join(map(str, seeds))} only)")
        eps = ", ".join(fmt_eps(e) for e in self.epsilons)
        return (f"datasets {', '.join(self.datasets)}; ε ∈ {{{eps}}}; "
                f"condensing with {', '.join(self.families)}; seeds {', '.join(map(str, self.seeds))}; "
                f"baselines {', '.join(self.baselines) or 'none'}{limited}; rounds {rounds}")


QUICK = GridSpec(datasets=("heart_disease", "gbsg2"), epsilons=(1.0, math.inf),
                 families=(PORTFOLIO, "logistic_regression"), seeds=(0, 1, 2),
                 baselines=("dp_gaussian", "mst", "aim"),
                 name="quick")  # every baseline on every seed: MST and AIM vary from run to run;
# the condenser's default rounds, so that the quick report measures the release a user gets

FULL = GridSpec(datasets=tuple(DATASETS), epsilons=(0.5, 1.0, 2.0, 8.0, math.inf),
                families=(PORTFOLIO, *families_for_task("classification"),
                          *families_for_task("survival")),
                seeds=(0, 1, 2), name="full")


def fmt_eps(eps: float | str) -> str:
    """``inf`` for ∞, ``''`` for not applicable, else the shortest float text."""
    if eps == "" or eps is None:
        return ""
    e = float(eps)
    return "inf" if math.isinf(e) else f"{e:g}"


@dataclass(frozen=True)
class Job:
    """One release to produce and score."""

    dataset: str
    method: str
    trained_with: str
    epsilon: str
    seed: int

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.dataset, self.method, self.trained_with, self.epsilon, str(self.seed))

    @property
    def label(self) -> str:
        eps = f" ε={self.epsilon}" if self.epsilon else ""
        fam = f"[{self.trained_with}]" if self.trained_with else ""
        return f"{self.dataset} {self.method}{fam}{eps} seed {self.seed}"


def grid_jobs(spec: GridSpec) -> list[Job]:
    """Every job of the grid: references first, then condensed sets and baselines."""
    jobs: list[Job] = []
    for ds in spec.datasets:
        jobs.append(Job(ds, "full_real", "", "", 0))
        jobs += [Job(ds, "random_subset", "", "", s) for s in spec.seeds]
        for eps in spec.epsilons:
            e = fmt_eps(eps)
            for s in spec.seeds:
                jobs += [Job(ds, "condensed", f, e, s) for f in spec.families_for(ds)]
                jobs += [Job(ds, b, "", e, s) for b in spec.baselines
                         if s in spec.seeds_for(b) and not (b in ("mst", "aim") and math.isinf(eps))]
    return jobs


class ResultsFile:
    """``results.csv``: header once, rows appended and flushed as each job finishes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), None)
            if header is not None and tuple(header) != COLUMNS:
                raise FedcondenseError(f"{path}: not a fedcondense benchmark results file (its "
                                       "header differs); choose another --out folder.")

    def done(self) -> set[tuple[str, str, str, str, str]]:
        """Keys of the jobs that already have rows (a job that failed outright is retried)."""
        return {tuple(r[c] for c in KEY) for r in self.rows()  # type: ignore[misc]
                if not r["status"].startswith("failed")}

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def append(self, rows: Iterable[dict[str, object]]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
            if new:
                writer.writeheader()
            for r in rows:
                writer.writerow({c: _cell(r.get(c, "")) for c in COLUMNS})
            fh.flush()


def _cell(v: object) -> object:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def pending(jobs: list[Job], done: set[tuple[str, str, str, str, str]]) -> Iterator[Job]:
    return (j for j in jobs if j.key not in done)
