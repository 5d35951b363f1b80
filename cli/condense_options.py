"""Command-line options shared by ``condense`` and ``simulate`` (one declaration each).

Defaults are literals so that ``--help`` needs no heavy imports; ``tests/cli`` checks them
against :class:`~fedcondense.protocol.condensation.condenser.CondenseConfig`.
"""

from __future__ import annotations

import typer

ROWS_PER_CLASS = typer.Option(None, "--rows-per-class",
                              help="Synthetic rows per class (classification; default 10).")
ROWS = typer.Option(None, "--rows", help="Synthetic rows in total (survival; default 40).")
MODELS = typer.Option("", "--models", help="Comma-separated model families (portfolio). "
                      "Default: logistic_regression,decision_tree / cox_ph.")
ROUNDS = typer.Option(100, "--rounds", help="Optimisation rounds T.")
DIRECTIONS = typer.Option(64, "--directions", help="Random directions P per round.")
SAMPLE_RATE = typer.Option(0.25, "--sample-rate",
                           help="Poisson sampling rate q per round (at every site).")
MU = typer.Option(0.1, "--mu", help="Smoothing radius μ (encoded units).")
LR = typer.Option(0.05, "--lr", help="Adam learning rate.")
CLIP_NORM = typer.Option(1.0, "--clip-norm", help="Per-record clip norm C of the P-vector.")
INIT = typer.Option("dp", "--init",
                    help="'dp' (noisy class means, charged to ε) or 'random' (data-free).")
INIT_SHARE = typer.Option(0.3, "--init-share", help="Share of ε spent on the DP initialisation.")
ACCOUNTANT = typer.Option("rdp", "--accountant", help="'rdp' or 'pld' (dp-accounting).")
BACKEND = typer.Option("auto", "--backend", help="'reference', 'batched' or 'auto'.")
QUIET = typer.Option(False, "--quiet", help="No progress bar.")

#: CondenseConfig field → default of its option (checked by the tests).
DEFAULTS = {"rounds": ROUNDS.default, "directions": DIRECTIONS.default,
            "sample_rate": SAMPLE_RATE.default, "mu": MU.default, "lr": LR.default,
            "clip_norm": CLIP_NORM.default, "init": INIT.default,
            "init_share": INIT_SHARE.default, "accountant": ACCOUNTANT.default,
            "backend": BACKEND.default}
