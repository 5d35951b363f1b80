"""``fedcondense simulate``: a federated run on one machine through Flower's simulation engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..protocol.errors import FedcondenseError
from . import condense_options as opts
from .app import app


def _site_files(dataset: Optional[str], site_data: list[Path], data: Optional[Path],
                schema_path: Optional[Path], sites: int, partition: str, seed: int,
                work: Path) -> tuple[list[Path], Path]:
    """Resolve the three input styles into one CSV per site plus the schema path."""
    import pandas as pd

    from ..protocol.data.schema import Schema
    from ..simulations.evaluation.datasets import export_dataset
    from ..simulations.evaluation.site_splits import split_sites

    work.mkdir(parents=True, exist_ok=True)
    given = sum([dataset is not None, bool(site_data), data is not None])
    if given != 1:
        raise FedcondenseError("give exactly one of --dataset NAME, --site-data A.csv B.csv ..., "
                               "or DATA.csv with --sites N.")
    if site_data:
        if schema_path is None:
            raise FedcondenseError("--site-data needs --schema S.json.")
        if len(site_data) < 2:
            raise FedcondenseError("--site-data needs at least 2 site files.")
        return list(site_data), schema_path
    if dataset is not None:
        export_dataset(dataset, work)
        data, schema_path = work / f"{dataset}.csv", work / f"{dataset}.schema.json"
    elif schema_path is None:
        raise FedcondenseError("DATA.csv needs --schema S.json.")
    assert data is not None and schema_path is not None
    if sites < 2:
        raise FedcondenseError("--sites must be at least 2 for a federation.")
    schema = Schema.load(schema_path)
    from ..protocol.data.site_table import load_site_table

    load_site_table(data, schema)  # validates the pooled file before splitting it
    df = pd.read_csv(data) if data.suffix.lower() != ".parquet" else pd.read_parquet(data)
    files = []
    for i, part in enumerate(split_sites(df, schema, sites, partition=partition, seed=seed)):
        files.append(work / f"site-{i + 1}.csv")
        part.to_csv(files[-1], index=False)
    return files, schema_path


def _quiet_frameworks() -> None:
    """Keep Flower/Ray chatter out of the terminal (our own warnings still show)."""
    import logging
    import os
    import warnings

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from flwr.supercore.logger import update_console_handler

    update_console_handler(level=logging.ERROR)  # Flower's INFO lines: OUT/flower.log
    logging.getLogger("flwr").propagate = False


def _flower_log_file(out_dir: Path) -> None:
    """Append Flower's own log lines (INFO and up) to ``OUT/flower.log``."""
    import logging

    handler = logging.FileHandler(out_dir / "flower.log", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("flwr").addHandler(handler)


@app.command("simulate", help="Federated condensation on one machine: K simulated sites, "
             "Flower simulation engine, SecAgg+ secure aggregation (default).")
def simulate_command(
    data: Optional[Path] = typer.Argument(None, help="One table to split across --sites."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Bundled dataset name (see `datasets list`)."),
    site_data: list[Path] = typer.Option([], "--site-data", help="One table per site (repeat the option)."),
    schema_path: Optional[Path] = typer.Option(None, "--schema", help="Consortium schema JSON."),
    sites: int = typer.Option(3, "--sites", help="Number of sites when splitting one table."),
    partition: str = typer.Option("iid", "--partition", help="'iid' or 'dirichlet:ALPHA' (label skew)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    secure: bool = typer.Option(True, "--secure-aggregation/--no-secure-aggregation", help="SecAgg+ (default) or plain sums."),
    noise: str = typer.Option("distributed", "--noise", help="'local' (each site adds full noise) or 'distributed' (σ/√t each)."),
    threshold: Optional[int] = typer.Option(None, "--threshold", help="Minimum surviving sites t (default K-1, at least 2)."),
    engine: str = typer.Option("ray", "--engine", help="'ray' (Flower simulation engine) or 'local' (in-process grid)."),
    site_processes: int = typer.Option(1, "--site-processes", help="Ray processes running the simulated sites; 1 (default) shares each round's public model fits across all sites."),
    epsilon: float = typer.Option(1.0, "--epsilon", help="ε per site; 'inf' = no noise (non-private)."),
    delta: float = typer.Option(1e-5, "--delta", help="δ; must be < 1/n of the smallest site."),
    rows_per_class: Optional[int] = opts.ROWS_PER_CLASS,
    rows: Optional[int] = opts.ROWS,
    models: str = opts.MODELS,
    rounds: int = opts.ROUNDS,
    directions: int = opts.DIRECTIONS,
    sample_rate: float = opts.SAMPLE_RATE,
    mu: float = opts.MU,
    lr: float = opts.LR,
    clip_norm: float = opts.CLIP_NORM,
    init: str = opts.INIT,
    init_share: float = opts.INIT_SHARE,
    accountant: str = opts.ACCOUNTANT,
    backend: str = opts.BACKEND,
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for a reproducible study: the sites' noise then comes from the seed, so the release is labelled NOT private (private: false)."),
    quiet: bool = opts.QUIET,
    verbose: bool = typer.Option(False, "--verbose", help="Show Flower's and Ray's own logs."),
) -> None:
    if not verbose:
        _quiet_frameworks()
    from ..protocol.data.schema import Schema
    from ..protocol.release.release import prepare_output_dir
    from ..simulations.runtime.compute_plan import plan_compute
    from ..simulations.runtime.federated_condense import run_federated
    from .options import condense_config_from_options
    from .progress import round_progress

    if noise not in ("local", "distributed"):
        raise FedcondenseError(f"--noise {noise!r}: use 'local' or 'distributed'.")
    if noise == "distributed" and not secure and epsilon != float("inf"):
        raise FedcondenseError(
            "--noise distributed needs secure aggregation: without it the server sees each "
            "site's vector carrying only a σ/√t noise share; use --noise local or drop "
            "--no-secure-aggregation.")
    if engine not in ("ray", "local"):
        raise FedcondenseError(f"--engine {engine!r}: use 'ray' or 'local'.")
    if site_processes < 1:
        raise FedcondenseError(f"--site-processes {site_processes}: use 1 or more.")
    inputs = [p for p in [data, schema_path, *site_data] if p is not None]
    out_dir = prepare_output_dir(out, inputs)
    if not verbose:
        _flower_log_file(out_dir)
    files, schema_file = _site_files(dataset, site_data, data, schema_path, sites, partition,
                                     seed or 0, out_dir / "sites")
    schema = Schema.load(schema_file)
    if schema.inferred_bounds_warning:
        typer.echo(f"warning: {schema.inferred_bounds_warning}", err=True)
    config = condense_config_from_options(
        schema, epsilon=epsilon, delta=delta, rows_per_class=rows_per_class, rows=rows,
        models=models, rounds=rounds, directions=directions, sample_rate=sample_rate, mu=mu,
        lr=lr, clip_norm=clip_norm, init=init, init_share=init_share, accountant=accountant,
        backend=backend, seed=seed,
    )
    config.validate()
    plan = plan_compute(config.resolved_models(schema), config.backend)
    total = rounds + (1 if init == "dp" else 0)
    started = time.perf_counter()
    with round_progress(total, f"federating {len(files)} sites", disable=quiet) as advance:
        result = run_federated(files, schema_file, config, mode=noise, secure=secure,  # type: ignore[arg-type]
                               threshold=threshold, backend=engine, progress=advance,
                               checkpoint=out_dir / "checkpoint.npz",
                               site_processes=site_processes, compute=plan)
    wall = time.perf_counter() - started
    privacy = _write_reports(out_dir, result, schema, config, files, wall, secure=secure,
                             noise=noise, engine=engine, site_processes=site_processes,
                             compute=plan.as_dict())
    _print_summary(result.orchestrator.history, out_dir, len(files), site_processes, engine,
                   verbose=verbose, quiet=quiet)
    typer.echo(f"wrote {out_dir / 'synthetic.csv'} ({len(files)} sites, "
               f"{'SecAgg+' if secure else 'plain sums'}, {noise} noise) in {wall:.1f} s")
    for line in privacy["warnings"]:
        typer.echo(f"warning: {line}", err=True)


def _write_reports(out_dir: Path, result: Any, schema: Any, config: Any, files: list[Path],
                   wall: float, *, secure: bool, noise: str, engine: str, site_processes: int,
                   compute: dict[str, Any]) -> dict[str, Any]:
    """The release and its ``privacy.json``/``run.json`` (the one report builder)."""
    from ..protocol.release.release import write_release
    from ..protocol.release.reports import run_report
    from ..simulations.runtime.round_timing import split_totals

    orch = result.orchestrator
    privacy = orch.privacy_report()
    privacy["secure_aggregation"] = secure
    per_round = 2 * config.directions * len(config.resolved_models(schema))
    for row in orch.history:
        if row.get("time_split_s") and row["time_split_s"]["fit_s"] > 0:
            row["function_evaluations_per_second"] = per_round / row["time_split_s"]["wall_s"]
    run = run_report(
        command="simulate", config=config, schema=schema, run_seed=orch.run_seed,
        private=privacy["private"], n_sites=len(files), secure_aggregation=secure,
        wall_seconds=wall, rounds=orch.history, site_files=[str(f) for f in files],
        noise_mode=noise, engine=engine, threshold=orch.threshold,
        handshake_seconds=result.report.handshake_s, site_processes=site_processes,
        compute=compute, time_split_seconds=split_totals(orch.history),
        transport=result.report.rounds)
    fit_s = run["time_split_seconds"].get("fit_s")
    run["function_evaluations_per_fit_second"] = (
        run["function_evaluations"] / fit_s if fit_s else None)
    write_release(out_dir, orch.synthetic.decode(), privacy, run)
    return privacy


def _print_summary(history: list[dict[str, Any]], out_dir: Path, n_sites: int,
                   site_processes: int, engine: str, *, verbose: bool, quiet: bool) -> None:
    """The round time split (``--verbose``) or one line of round seconds."""
    if verbose:
        from rich.console import Console

        from ..simulations.runtime.round_timing import split_table

        Console(stderr=True, width=100).print(split_table(
            history, f"round time split ({n_sites} sites, {site_processes} site "
            f"process{'es' if site_processes > 1 else ''}, {engine} engine)"))
    elif not quiet:
        import statistics

        walls = [r["time_split_s"]["wall_s"] for r in history if r.get("time_split_s")]
        if walls:
            typer.echo(f"rounds: median {statistics.median(walls):.2f} s (time split: "
                       f"--verbose); Flower's log: {out_dir / 'flower.log'}", err=True)
