"""``fedcondense evaluate``: train on synthetic, test on real, next to train on real; plus the
privacy audit of the release (membership-inference AUCs, copies, subgroup utility) and plots."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from ..protocol.data.schema import Schema
from ..protocol.errors import FedcondenseError
from .app import app


def _rows_of(schema: "Schema", synthetic_rows: int) -> int:
    return synthetic_rows // schema.n_classes if not schema.is_survival else synthetic_rows


@app.command("evaluate", help="Train each model family on the synthetic table and on the real "
             "training table; score both on the real test table (AUROC; C-index and integrated "
             "Brier score for survival), next to random real subsets of the synthetic size.")
def evaluate_command(
    synthetic: Path = typer.Option(..., "--synthetic", help="Released synthetic.csv."),
    train: Path = typer.Option(..., "--train", help="Real training table (CSV/Parquet)."),
    test: Path = typer.Option(..., "--test", help="Real held-out test table."),
    schema_path: Path = typer.Option(..., "--schema", help="Consortium schema JSON."),
    out: Path = typer.Option(..., "--out", help="Output folder (evaluation.csv/json, audit.json, "
                             "subgroups.csv, plots/utility.png, plots/audit.png, "
                             "plots/subgroups.png)."),
    models: str = typer.Option("", "--models", help="Comma-separated families (default: all of the task)."),
    subsets: int = typer.Option(20, "--subsets", help="Random real subsets of the synthetic size to average."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random subsets."),
    audit: bool = typer.Option(True, "--audit/--no-audit", help="Also audit the release: "
                               "membership inference (loss threshold per family, distance to "
                               "closest record; --train records are members, --test records "
                               "non-members) with 95 % intervals, exact/near copies of real "
                               "rows, utility by the schema's subgroup columns."),
) -> None:
    from ..protocol.data.atomic_file import atomic_write_text
    from ..protocol.data.site_table import load_site_table
    from ..protocol.families import families_for_task
    from ..protocol.release.release import prepare_output_dir
    from ..simulations.evaluation.utility import as_table, compare

    schema = Schema.load(schema_path)
    task = "survival" if schema.is_survival else "classification"
    names = [m.strip() for m in models.split(",") if m.strip()] or families_for_task(task)
    for m in names:
        if m not in families_for_task(task):
            raise FedcondenseError(f"--models: '{m}' is not a {task} model family; choose from "
                                   f"{', '.join(families_for_task(task))}.")
    if subsets < 0:
        raise FedcondenseError("--subsets must be 0 or more.")
    syn = load_site_table(synthetic, schema, min_rows=2)
    tr = load_site_table(train, schema, min_rows=2)
    te = load_site_table(test, schema, min_rows=2)
    out_dir = prepare_output_dir(out, [synthetic, train, test, schema_path])
    rows = compare(schema, names, as_table(syn), as_table(tr), as_table(te),
                   _rows_of(schema, syn.n_rows), n_subsets=subsets, seed=seed)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["family", "source", "metric", "value", "std"])
    writer.writeheader()
    for r in rows:
        writer.writerow({**{"std": ""}, **r})
    atomic_write_text(out_dir / "evaluation.csv", buf.getvalue())
    atomic_write_text(out_dir / "evaluation.json", json.dumps(
        {"schema_hash": schema.hash(), "synthetic": str(synthetic), "train": str(train),
         "test": str(test), "results": rows}, indent=2) + "\n")

    table = RichTable(title=f"Train on synthetic vs real — test on {test.name}")
    sources = list(dict.fromkeys(str(r["source"]) for r in rows))
    metrics = list(dict.fromkeys(str(r["metric"]) for r in rows))
    table.add_column("family")
    table.add_column("metric")
    for s in sources:
        table.add_column(s, justify="right")
    for fam in names:
        for met in metrics:
            vals = {str(r["source"]): r["value"] for r in rows
                    if r["family"] == fam and r["metric"] == met}
            table.add_row(fam, met, *[f"{vals[s]:.3f}" if s in vals else "" for s in sources])
    Console().print(table)
    typer.echo(f"wrote {out_dir / 'evaluation.csv'}")
    metric = "c_index" if schema.is_survival else "auroc"
    from ..simulations.evaluation.release_audit import utility_plot

    png = utility_plot(rows, metric, f"Utility of {synthetic.name} vs real data "
                       f"(test on {test.name})", out_dir / "plots" / "utility.png")
    typer.echo(f"wrote {png}")
    if audit:
        _audit(syn, tr, te, names, metric, out_dir)


def audit_rows(attacks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The audit table's rows: every attack, except that the per-family loss-threshold
    attacks show as one row, the strongest of them (highest AUC, the conservative figure;
    each family's AUC is in ``audit.json`` and ``plots/audit.png``)."""
    rows = [(str(a["attack"]), a) for a in attacks
            if not str(a["attack"]).startswith("loss_threshold[")]
    losses = [a for a in attacks if str(a["attack"]).startswith("loss_threshold[")
              and a.get("auc") == a.get("auc")]  # NaN: a family that could not be fitted
    if losses:
        top = max(losses, key=lambda a: float(a["auc"]))
        rows.append((f"{top['attack']} (max of {len(losses)})", top))
    return rows


def _audit(syn: object, tr: object, te: object, names: list[str], metric: str, out_dir: Path) -> None:
    """Write audit.json, subgroups.csv and the audit plots; print the attack AUCs."""
    import pandas as pd

    from ..protocol.data.atomic_file import atomic_write_text
    from ..protocol.release.release import dumps
    from ..simulations.evaluation.release_audit import audit_plot, audit_release, subgroup_plot

    result, subgroups = audit_release(syn, tr, te, names)  # type: ignore[arg-type]
    atomic_write_text(out_dir / "audit.json", dumps(result))
    atomic_write_text(out_dir / "subgroups.csv", pd.DataFrame(
        subgroups, columns=["subgroup", "level", "n_test", "family", "source", "metric",
                            "value"]).to_csv(index=False))
    table = RichTable(title="Privacy audit (AUC 0.5 = attack no better than chance)")
    for col in ("attack", "AUC", "95 % CI"):
        table.add_column(col, no_wrap=True)
    for name, a in audit_rows(result["attacks"]):  # type: ignore[arg-type]
        table.add_row(escape(name), f"{a['auc']:.3f}", f"[{a['ci_low']:.3f}, {a['ci_high']:.3f}]")
    Console().print(table)
    copies = result["copies"]  # type: ignore[index]
    typer.echo(f"exact copies of real training rows: {copies['exact_copies']}"  # type: ignore[index]
               f"{'' if result['exact_copies_ok'] else '  <-- MUST BE 0: do not release'}; "
               f"near copies: {copies['near_copies']}")  # type: ignore[index]
    pngs = [audit_plot(result, out_dir / "plots" / "audit.png"),
            subgroup_plot(subgroups, metric, out_dir / "plots" / "subgroups.png")]
    if not result["subgroup_columns"]:
        typer.echo("no subgroup columns in the schema (add \"subgroups\": [...] to audit "
                   "utility by subgroup)")
    typer.echo(f"wrote {out_dir / 'audit.json'}, {out_dir / 'subgroups.csv'}, "
               + ", ".join(str(p) for p in pngs if p is not None))
