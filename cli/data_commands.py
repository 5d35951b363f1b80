"""``fedcondense datasets ...`` and ``fedcondense schema ...``: bundled data and schemas.

* ``datasets list`` — the bundled real clinical tables.
* ``datasets export NAME --out DIR`` — ``DIR/NAME.csv`` + ``DIR/NAME.schema.json`` (and, with
  ``--test-size``, a stratified ``NAME.train.csv`` / ``NAME.test.csv``).
* ``schema infer DATA (--target COL | --time COL --event COL) -o schema.json`` — a starter
  schema whose data-derived bounds must be reviewed (the warning goes to stderr).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from ..protocol.errors import FedcondenseError
from .app import app

datasets_app = typer.Typer(help="Bundled real clinical datasets with public schemas.",
                           no_args_is_help=True)
schema_app = typer.Typer(help="Consortium schema tools.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(schema_app, name="schema")


@datasets_app.command("list", help="List the bundled datasets (rows after cleaning).")
def datasets_list() -> None:
    from rich.console import Console
    from rich.table import Table

    from ..simulations.evaluation.datasets import DATASETS

    table = Table(title="Bundled datasets")
    for col, just in (("name", "left"), ("task", "left"), ("rows", "right"),
                      ("columns", "right"), ("source", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for info in DATASETS.values():
        table.add_row(info.name, info.task, str(info.rows), str(info.columns), info.source)
    Console().print(table)


@datasets_app.command("export", help="Write DIR/NAME.csv and DIR/NAME.schema.json.")
def datasets_export(
    name: str = typer.Argument(..., help="Dataset name (see `fedcondense datasets list`)."),
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    test_size: Optional[float] = typer.Option(
        None, "--test-size", help="Also write a stratified NAME.train.csv / NAME.test.csv "
        "with this test share (e.g. 0.3)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/test split."),
) -> None:
    from ..simulations.evaluation.datasets import DATASETS, export_dataset, load_dataset
    from ..simulations.evaluation.site_splits import train_test_split_table

    if name not in DATASETS:
        raise FedcondenseError(f"unknown dataset '{name}'; choose from {', '.join(DATASETS)}.")
    if test_size is not None and not 0 < test_size < 1:
        raise FedcondenseError(f"--test-size {test_size}: give a share strictly between 0 and 1.")
    csv_path, schema_path = export_dataset(name, out)
    typer.echo(f"wrote {csv_path} and {schema_path}")
    if test_size is not None:
        df, schema = load_dataset(name)
        train, test = train_test_split_table(df, schema, test_size=test_size, seed=seed)
        train.to_csv(out / f"{name}.train.csv", index=False)
        test.to_csv(out / f"{name}.test.csv", index=False)
        typer.echo(f"wrote {out / (name + '.train.csv')} ({len(train)} rows) and "
                   f"{out / (name + '.test.csv')} ({len(test)} rows)")


@schema_app.command("infer", help="Write a starter schema from one table. Bounds, levels and "
                    "horizons read from data are NOT private: review them and replace them by "
                    "public ones before use.")
def schema_infer(
    data: Path = typer.Argument(..., help="A table (CSV or Parquet)."),
    output: Path = typer.Option(..., "-o", "--output", help="Schema JSON to write."),
    target: Optional[str] = typer.Option(None, "--target", help="Classification target column."),
    time: Optional[str] = typer.Option(None, "--time", help="Survival time column."),
    event: Optional[str] = typer.Option(None, "--event", help="Survival event column (0/1)."),
    name: Optional[str] = typer.Option(None, "--name", help="Schema name (default: file stem)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    if target is not None and (time is not None or event is not None):
        raise FedcondenseError("give either --target (classification) or --time and --event "
                               "(survival), not both.")
    if target is None and (time is None) != (event is None):
        missing = "--event" if event is None else "--time"
        raise FedcondenseError(f"survival needs both --time and --event; add {missing} COL.")
    if target is None and time is None:
        raise FedcondenseError("give --target COL (classification) or --time COL --event COL "
                               "(survival).")
    if output.exists() and not force:
        raise FedcondenseError(f"{output}: already exists; choose another -o path or pass "
                               f"--force to overwrite it.")
    if not output.parent.exists():
        raise FedcondenseError(f"{output.parent}: folder does not exist; create it first.")
    from ..protocol.data.schema_infer import INFERRED_SCHEMA_WARNING, infer_schema
    from ..protocol.data.table_file import read_raw_table

    raw = read_raw_table(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            schema = infer_schema(raw.frame, target=target, time=time, event=event,
                                  name=name or data.name.split(".")[0])
        except FedcondenseError as exc:
            raise type(exc)(f"{data}: {exc}") from None
    schema.save(output)
    typer.echo(f"wrote {output} ({len(schema.columns)} feature columns, "
               f"{'survival' if schema.is_survival else 'classification'})")
    typer.echo(f"warning: {INFERRED_SCHEMA_WARNING}", err=True)
