"""The ``fedcondense`` command line: the entry point that mounts every sub-command module on
the one Typer app (:mod:`fedcondense.cli.app`; the modules import the app, never this module,
so nothing here is imported in a cycle).

Every user-caused error is a :class:`~fedcondense.protocol.errors.FedcondenseError`; :func:`main`
prints it as one line (``error: ...``) on stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from ..protocol.errors import FedcondenseError
from .app import app

__all__ = ["app", "main"]


def _mount() -> None:
    """Attach the sub-command modules (each registers its commands on ``app``)."""
    # in the order `fedcondense --help` lists them
    from . import (
        benchmark_commands,  # noqa: F401
        condense_commands,  # noqa: F401
        data_commands,  # noqa: F401  (datasets, schema)
        evaluate_commands,  # noqa: F401
        simulate_commands,  # noqa: F401
        site_commands,  # noqa: F401
    )


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    _mount()
    try:
        app(standalone_mode=False)
    except FedcondenseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("FEDCONDENSE_TRACEBACK"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"error: internal error ({type(exc).__name__}: {first}); this is a fedcondense "
              "bug, not your input: please report it with the command line (set "
              "FEDCONDENSE_TRACEBACK=1 to see where it happened).", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":  # `python -m fedcondense.cli.main`: use the registered app
    from .main import main as _main

    _main()
