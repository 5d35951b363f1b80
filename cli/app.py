"""The one Typer application every ``fedcondense`` sub-command registers on.

Command modules (``*_commands.py``) import :data:`app` from here and add their commands;
:mod:`fedcondense.cli.main` imports them all and runs the app.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fedcondense",
    help="Federated, differentially private dataset condensation for hospital consortia.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
