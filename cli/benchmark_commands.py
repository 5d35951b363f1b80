"""``fedcondense benchmark``: condensation against full data, random subsets and DP synthetic-data
generators over a grid of datasets × ε × model families × seeds; resumable; Markdown report
and PNG plots."""

from __future__ import annotations

import math
import time
from pathlib import Path

import typer

from ..protocol.errors import FedcondenseError
from .app import app


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise FedcondenseError(f"{option} {text!r}: give comma-separated numbers or 'inf', "
                               "e.g. 0.5,1,inf.") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def dataset_names(text: str) -> tuple[str, ...]:
    """``--datasets``: comma-separated names, or ``all`` for every bundled dataset."""
    from ..simulations.evaluation.datasets import DATASETS

    return tuple(DATASETS) if text.strip() == "all" else _names(text)


@app.command("benchmark", help="Benchmark condensation against the full data, random real "
             "subsets and DP synthetic-data generators (built-in dp_gaussian; MST and AIM from "
             "smartnoise-synth when installed, here or in the .venv-baselines/ that "
             "bash deploy/bootstrap.sh --extras baselines makes) over datasets × ε × condensing families × seeds. "
             "Every release is also audited (membership-inference AUCs, copies, utility by "
             "the schema's subgroup columns). Results are "
             "appended to OUT/results.csv as they come, so an interrupted run resumes; "
             "OUT/report.md and OUT/plots/*.png are written at the end.")
def benchmark_command(
    out: Path = typer.Option(..., "--out", help="Output folder (results.csv, report.md, plots/)."),
    quick: bool = typer.Option(False, "--quick", help="Small grid (about 15 min on 2 cores): "
                               "heart_disease + gbsg2, ε ∈ {1, inf}, condensing with the portfolio "
                               "and logistic_regression, dp_gaussian, MST and AIM, 3 seeds each, "
                               "the condenser's default rounds."),
    datasets: str = typer.Option("", "--datasets", help="Comma-separated bundled datasets "
                                 "or 'all' (default: the grid's)."),
    epsilons: str = typer.Option("", "--epsilons", help="Comma-separated ε values, 'inf' for "
                                 "non-private (default: 0.5,1,2,8,inf)."),
    families: str = typer.Option("", "--families", help="Condensing families, 'portfolio' for "
                                 "the condenser's default set (default: portfolio and every family)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Number of seeds (default 3)."),
    baselines: str = typer.Option("", "--baselines", help="Comma-separated among dp_gaussian, "
                                  "mst, aim; 'none' for none (default: the grid's)."),
    rounds: int | None = typer.Option(None, "--rounds", help="Condensation rounds (default: the "
                               "condenser's default)."),
    eval_models: str = typer.Option("", "--eval-models", help="Families to evaluate every "
                                    "release with (default: every family of the task)."),
    baselines_python: str = typer.Option("", "--baselines-python", help="Python interpreter "
                                         "of a separate environment with smartnoise-synth and "
                                         "fedcondense, used for MST/AIM when they are not "
                                         "installed here (default: the repo's "
                                         ".venv-baselines/bin/python when it exists)."),
    report_only: bool = typer.Option(False, "--report-only", help="Only (re)write the report "
                                     "and plots from OUT/results.csv."),
) -> None:
    from dataclasses import replace

    from ..protocol.families import families_for_task
    from ..simulations.benchmarks.benchmark_grid import FULL, QUICK
    from ..simulations.benchmarks.benchmark_report import write_report
    from ..simulations.benchmarks.benchmark_runner import (
        add_seconds,
        plan_run,
        run_jobs,
        write_meta,
    )
    from ..simulations.evaluation.baselines import find_baselines_python
    from .progress import job_progress

    if out.exists() and not out.is_dir():
        raise FedcondenseError(f"{out}: exists and is not a folder; pass a folder to --out.")
    if report_only:
        if not (out / "results.csv").exists():
            raise FedcondenseError(f"{out / 'results.csv'}: not found; run the benchmark first.")
        typer.echo(f"wrote {write_report(out)}")
        _echo_targets(out)
        return
    spec = QUICK if quick else FULL
    if datasets:
        spec = replace(spec, datasets=dataset_names(datasets))
    if epsilons:
        spec = replace(spec, epsilons=_floats(epsilons, "--epsilons"))
    if families:
        spec = replace(spec, families=_names(families))
    if seeds is not None:
        if seeds < 1:
            raise FedcondenseError("--seeds must be at least 1.")
        spec = replace(spec, seeds=tuple(range(seeds)))
    if baselines:
        spec = replace(spec, baselines=() if baselines == "none" else _names(baselines))
    if rounds is not None:
        if rounds < 1:
            raise FedcondenseError("--rounds must be at least 1.")
        spec = replace(spec, rounds=rounds)
    if eval_models:
        names = _names(eval_models)
        by_task = {t: tuple(n for n in names if n in families_for_task(t))
                   for t in ("classification", "survival")}
        unknown = set(names) - set(by_task["classification"]) - set(by_task["survival"])
        if unknown:
            raise FedcondenseError(f"--eval-models: unknown family '{sorted(unknown)[0]}'.")
        spec = replace(spec, eval_families={t: v for t, v in by_task.items() if v})
    if spec != (QUICK if quick else FULL):
        spec = replace(spec, name=f"{spec.name}, modified")
    if any(math.isnan(e) for e in spec.epsilons):
        raise FedcondenseError("--epsilons: nan is not a privacy level.")
    python = find_baselines_python(baselines_python or None)
    plan = plan_run(spec, out, python)  # validates the grid before anything is written
    out.mkdir(parents=True, exist_ok=True)
    write_meta(spec, out, plan, python)
    for name, note in plan.availability.items():
        if name in spec.baselines and not note.startswith("available"):
            typer.echo(f"note: baseline {name} {note}; the report says so.")
    typer.echo(f"grid: {spec.describe()}")
    typer.echo(f"{len(plan.jobs)} jobs, {len(plan.jobs) - len(plan.todo)} already in "
               f"{out / 'results.csv'}")
    t0 = time.perf_counter()
    with job_progress(len(plan.jobs), len(plan.jobs) - len(plan.todo), "benchmark") as advance:
        run_jobs(spec, out, plan, python, on_job=advance)
    add_seconds(out, time.perf_counter() - t0)
    typer.echo(f"wrote {out / 'results.csv'}")
    typer.echo(f"wrote {write_report(out)}")
    _echo_targets(out)


def _echo_targets(out: Path) -> None:
    """The utility targets at ε = 1, table by table (as in report.md)."""
    from ..simulations.benchmarks.benchmark_report import target_lines

    lines = target_lines(out)
    if lines:
        typer.echo("targets at ε = 1:")
        for line in lines:
            typer.echo(line.replace("**", ""))
