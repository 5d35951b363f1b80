"""Turning command-line options into a validated :class:`CondenseConfig` (shared by
``condense`` and ``simulate``)."""

from __future__ import annotations

import math

from fedcondense.protocol.condenser import CondenseConfig
from fedcondense.protocol.errors import FedcondenseError
from fedcondense.protocol.schema import Schema

DEFAULT_ROWS_PER_CLASS = 10
DEFAULT_SURVIVAL_ROWS = 40


def resolve_rows(schema: Schema, rows_per_class: int | None, rows: int | None) -> int:
    """Rows per class (classification) or total rows (survival) from the two options."""
    if rows_per_class is not None and rows is not None:
        raise FedcondenseError("give either --rows-per-class or --rows, not both.")
    if schema.is_survival:
        if rows_per_class is not None:
            raise FedcondenseError("--rows-per-class is for classification; use --rows N for survival.")
        return DEFAULT_SURVIVAL_ROWS if rows is None else rows
    if rows is not None:
        k = schema.n_classes
        if rows % k:
            raise FedcondenseError(
                f"--rows {rows} does not split evenly over {k} classes; use a multiple of {k} "
                f"or --rows-per-class."
            )
        return rows // k
    return DEFAULT_ROWS_PER_CLASS if rows_per_class is None else rows_per_class


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
