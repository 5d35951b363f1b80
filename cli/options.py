"""Turning command-line options into a validated :class:`CondenseConfig` (shared by
``condense`` and ``simulate``)."""

from __future__ import annotations

import math

from ..protocol.condensation.condenser import CondenseConfig

# The synthetic set's size rule lives with the set (protocol), shared by every command and
# by the deployed app; re-exported here for the command line's options.
from ..protocol.condensation.synthetic_set import (
    DEFAULT_ROWS_PER_CLASS,
    DEFAULT_SURVIVAL_ROWS,
    resolve_rows,
)
from ..protocol.data.schema import Schema
from ..protocol.errors import FedcondenseError

__all__ = ["DEFAULT_ROWS_PER_CLASS", "DEFAULT_SURVIVAL_ROWS", "condense_config_from_options",
           "resolve_rows"]


def condense_config_from_options(schema: Schema, *, rows_per_class: int | None, rows: int | None,
                                 models: str, accountant: str, **kwargs: object) -> CondenseConfig:
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    if accountant not in ("rdp", "pld"):
        raise FedcondenseError(f"--accountant {accountant!r}: use 'rdp' or 'pld'.")
    eps = kwargs.get("epsilon")
    if isinstance(eps, float) and math.isnan(eps):
        raise FedcondenseError("--epsilon nan is not a privacy level; give a number > 0 or 'inf'.")
    config = CondenseConfig(rows=resolve_rows(schema, rows_per_class, rows), models=names,
                            accountant=accountant, **kwargs)  # type: ignore[arg-type]
    config.resolved_models(schema)
    return config
