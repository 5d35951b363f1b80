"""``fedcondense condense``: one site condenses its own table (central mode)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..protocol.errors import FedcondenseError
from . import condense_options as opts
from .app import app

PRIVACY_HELP = ("Privacy: (ε, δ) per record via the sampled Gaussian mechanism, composed over "
                "all rounds (and the DP initialisation) with dp-accounting.")


@app.command("condense", help="Condense one site's table into a small DP synthetic table. "
             + PRIVACY_HELP)
def condense_command(
    data: Path = typer.Argument(..., help="The site's table (CSV or Parquet)."),
    schema_path: Path = typer.Option(..., "--schema", help="Consortium schema JSON."),
    out: Path = typer.Option(..., "--out", help="Output folder (synthetic.csv, privacy.json, run.json)."),
    epsilon: float = typer.Option(1.0, "--epsilon", help="Privacy budget ε of this run; 'inf' = no noise (non-private)."),
    delta: float = typer.Option(1e-5, "--delta", help="δ of the guarantee; must be < 1/n."),
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
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for a reproducible study: the noise then comes from the seed, so the release is labelled NOT private (private: false) and no ledger accepts it."),
    capacity: Optional[int] = typer.Option(None, "--capacity", help="Public upper bound on the records (needed with --init random in a private run; the exact count is never released)."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="Site privacy ledger JSON, charged before any data is read (create it once with `fedcondense ledger create`)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="The ledger's total ε budget, as you expect it (refused if the ledger says otherwise)."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with empty cells (reported) instead of refusing."),
    clip_to_bounds: bool = typer.Option(False, "--clip-to-bounds", help="Clip values outside the public bounds (reported) instead of refusing."),
    quiet: bool = opts.QUIET,
) -> None:
    # heavy imports (dp-accounting, torch, sklearn) only when the command runs
    from ..protocol.condensation.condenser import plan_privacy
    from ..protocol.data.schema import Schema
    from ..protocol.data.site_table import ingress_line, load_site_table
    from ..protocol.privacy.ledger import reserve
    from ..protocol.release.release import prepare_output_dir, write_release
    from ..protocol.release.reports import run_report
    from ..server.central_run import condense
    from ..simulations.runtime.compute_plan import plan_compute
    from ..simulations.runtime.round_timing import central_split
    from .options import condense_config_from_options
    from .progress import round_progress

    schema = Schema.load(schema_path)
    if schema.inferred_bounds_warning:
        typer.echo(f"warning: {schema.inferred_bounds_warning}", err=True)
    config = condense_config_from_options(
        schema, epsilon=epsilon, delta=delta, rows_per_class=rows_per_class, rows=rows,
        models=models, rounds=rounds, directions=directions, sample_rate=sample_rate, mu=mu,
        lr=lr, clip_norm=clip_norm, init=init, init_share=init_share, accountant=accountant,
        backend=backend, seed=seed,
    )
    config.validate()
    compute = plan_compute(config.resolved_models(schema), config.backend)  # usage errors here
    plan = plan_privacy(config)
    _check_ledger_use(config, plan.spends, ledger, budget)
    book = None
    if not data.is_file():
        raise FedcondenseError(f"{data}: no such file; give the site's table (CSV or Parquet).")
    out_dir = prepare_output_dir(out, [data, schema_path] + ([ledger] if ledger else []))
    run_id = f"condense-{int(time.time())}-{secrets.token_hex(4)}"
    if ledger is not None:
        # One locked check-and-record before any data is read: of two concurrent runs that
        # do not both fit the budget, exactly one is charged here and the other refused.
        book = reserve(ledger, run_id, f"condense {data.name}", plan.spends,
                       key=f"{run_id}/condense", epsilon_budget=budget)
    try:
        table = load_site_table(data, schema, drop_missing=drop_missing,
                                clip_to_bounds=clip_to_bounds, min_rows=10)
        config.validate(table.n_rows)
    except FedcondenseError as exc:
        if book is None:
            raise
        raise FedcondenseError(f"{exc} (the data was read, so this run's ε stays recorded in "
                               f"{ledger}; check a table first with `fedcondense site check`.)"
                               ) from None

    compute.apply()
    started = time.perf_counter()
    with round_progress(config.rounds, "condensing", disable=quiet) as advance:
        result = condense(table, schema, config, progress=advance, capacity=capacity)
    wall = time.perf_counter() - started

    per_round = 2 * config.directions * len(config.resolved_models(schema))  # fits per round
    privacy = result.privacy
    if book is not None:
        privacy["ledger"] = {"path": str(ledger), "epsilon_spent_total": book.spent(),
                             "epsilon_budget": book.epsilon_budget}
    run = run_report(
        command="condense", config=config, schema=schema, run_seed=result.run_seed,
        private=privacy["private"], n_sites=1, secure_aggregation=False, wall_seconds=wall,
        rounds=result.history, run_id=run_id, data=str(data), compute=compute.as_dict(),
        time_split_seconds=central_split(result.timings, result.history, wall, per_round))
    write_release(out_dir, result.synthetic.decode(), privacy, run)
    label = (f"ε = {privacy['epsilon']:.3g}, δ = {config.delta:g}" if privacy["private"]
             else "NON-PRIVATE (ε = inf)" if not config.private
             else f"NOT PRIVATE: seeded noise; ε = {privacy['epsilon']:.3g} only if the seed stays secret")
    typer.echo(f"wrote {out_dir / 'synthetic.csv'} ({result.synthetic.n_rows} rows; {label}) "
               f"in {wall:.1f} s, {run['function_evaluations_per_second']:.0f} fits/s")
    for line in privacy["warnings"]:
        typer.echo(f"warning: {line}", err=True)
    # ingress counts stay on this machine's console: no ε covers them
    typer.echo(f"ingress (local only, not written): {ingress_line(table.report)}", err=True)


def _check_ledger_use(config: Any, spends: list[Any], ledger: Optional[Path],
                      budget: Optional[float]) -> None:
    """Refuse ledger options that cannot work, and a run the ledger cannot afford (a cheap
    check before anything is reserved; re-checked under the ledger's lock)."""
    from ..protocol.privacy.ledger import PrivacyLedger

    if budget is not None and ledger is None:
        raise FedcondenseError("--budget needs --ledger FILE to record what is spent.")
    if ledger is None:
        return
    if not config.private:
        raise FedcondenseError("--ledger with --epsilon inf: a non-private run cannot be budgeted.")
    if config.seed is not None:
        raise FedcondenseError("--ledger with --seed: a seeded run's noise can be regenerated, "
                               "so it is not private and cannot be charged; drop --seed.")
    PrivacyLedger.open(ledger, epsilon_budget=budget).check(spends)
