"""A starter consortium schema read from one table — to be reviewed before any private use.

:func:`infer_schema` guesses each column's kind and domain from the data:

* only 0/1 values → ``binary``;
* all values numeric → ``numeric``, ``integer`` when all are whole numbers, bounds from the
  observed min/max rounded *outward* to "nice" values (one significant step of the largest
  magnitude, e.g. 29..77 → 20..80, 126..564 → 100..600);
* otherwise, at most ``max_levels`` distinct text values → ``categorical`` (levels sorted);
  more distinct values is refused (an identifier or free text: remove the column).

For survival the time bounds are rounded the same way (``time_min`` to a power of ten below
the smallest time) and the horizons are the 25/50/75 % quantiles of the observed times
rounded to two significant digits.

.. warning::
   Everything read here depends on the private data. Bounds, levels and horizons inferred
   from a table are **not** differentially private: publishing or using them unreviewed leaks
   information (e.g. the oldest patient's age). Review the schema and replace every bound by
   a public one (clinical plausibility ranges, data dictionaries) before using it.

The schema is marked ``"bounds_source": "inferred"``; a deployed site refuses it unless its
operator overrides that explicitly, and ``condense``/``simulate`` warn. After review, set the
key to ``"declared"``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError
from .schema import Schema
from .site_table import missing_mask, normalise_label

INFERRED_SCHEMA_WARNING = (
    "bounds, levels and horizons in this schema were read from the data and are NOT private; "
    "review them, replace every bound by a public one (clinical ranges, data dictionary) and "
    "set \"bounds_source\": \"declared\" before sharing the schema or running with it."
)
MAX_LEVELS = 10


class PublicBoundsWarning(UserWarning):
    """Issued by :func:`infer_schema`: data-derived bounds must be reviewed."""


def _step(lo: float, hi: float) -> float:
    mag = max(abs(lo), abs(hi))
    if mag == 0:
        return 1.0
    return 10.0 ** math.floor(math.log10(mag))


def nice_bounds(lo: float, hi: float) -> tuple[float, float]:
    """Round ``[lo, hi]`` outward to multiples of one power-of-ten step; always ``lo < hi``."""
    step = _step(lo, hi)
    a = math.floor(lo / step) * step
    b = math.ceil(hi / step) * step
    if a == b:
        b = a + step
    return _clean(a), _clean(b)


def _clean(x: float) -> float:
    r = round(x, 10)
    return float(int(r)) if r == int(r) else r


def _round_sig(x: float, digits: int = 2) -> float:
    if x == 0:
        return 0.0
    return _clean(round(x, digits - 1 - math.floor(math.log10(abs(x)))))


def _numbers(s: pd.Series) -> np.ndarray | None:
    v = s.map(lambda x: x.strip() if isinstance(x, str) else x)
    x = pd.to_numeric(v, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(x).any() or not np.isfinite(x).all():
        return None
    return x


def _column(name: str, s: pd.Series, max_levels: int) -> dict[str, Any]:
    x = _numbers(s)
    if x is not None:
        if set(np.unique(x).tolist()) <= {0.0, 1.0}:
            return {"name": name, "kind": "binary"}
        lo, hi = nice_bounds(float(x.min()), float(x.max()))
        integer = bool(np.all(x == np.round(x)))
        return {"name": name, "kind": "numeric", "min": lo, "max": hi, "integer": integer}
    levels = sorted({normalise_label(v) for v in s})
    if len(levels) > max_levels:
        raise SchemaError(f"column '{name}': {len(levels)} distinct non-numeric values, too many "
                          f"for a categorical column (at most {max_levels}); remove it from the "
                          f"table (identifier or free text) or recode it.")
    if len(levels) < 2:
        raise SchemaError(f"column '{name}': a single value '{levels[0]}'; a constant column "
                          f"carries no information: remove it from the table.")
    return {"name": name, "kind": "categorical", "levels": levels}


def _sort_labels(labels: list[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def infer_schema(df: pd.DataFrame, *, target: str | None = None, time: str | None = None,
                 event: str | None = None, name: str = "dataset",
                 max_levels: int = MAX_LEVELS) -> Schema:
    """Infer a starter schema from a table (see the module warning: NOT private).

    Parameters
    ----------
    df : pandas.DataFrame
        The table (raw strings from a CSV are fine). Rows with empty cells are ignored.
    target : str, optional
        Classification target column (exclusive with ``time``/``event``).
    time, event : str, optional
        Survival time and 0/1 event columns.
    name : str
        Schema name.
    max_levels : int
        Most distinct text values a categorical column may have.

    Returns
    -------
    Schema

    Warns
    -----
    PublicBoundsWarning
        Always: bounds read from data must be reviewed and replaced by public ones.

    Raises
    ------
    SchemaError
        Bad task options, unknown columns, unusable columns.
    """
    if target is not None and (time is not None or event is not None):
        raise SchemaError("give either a classification target (--target) or survival columns "
                          "(--time and --event), not both.")
    if target is None and (time is None or event is None):
        raise SchemaError("give --target COL for classification, or both --time COL and "
                          "--event COL for survival.")
    task_cols = [target] if target is not None else [time, event]
    for c in task_cols:
        if c not in df.columns:
            raise SchemaError(f"column '{c}' is not in the table; columns are: "
                              f"{', '.join(map(str, df.columns))}.")
    if len(set(task_cols)) != len(task_cols):
        raise SchemaError("--time and --event must be different columns.")
    columns: list[dict[str, Any]] = []
    for c in df.columns:
        if c in task_cols:
            continue
        s = df[c][~missing_mask(df[c])]
        if s.empty:
            raise SchemaError(f"column '{c}': every cell is empty; remove it from the table.")
        columns.append(_column(str(c), s, max_levels))
    if not columns:
        raise SchemaError("the table has no feature columns besides the task columns.")
    task: dict[str, Any]
    if target is not None:
        y = df[target][~missing_mask(df[target])]
        classes = _sort_labels(sorted({normalise_label(v) for v in y}))
        if len(classes) < 2:
            raise SchemaError(f"column '{target}': fewer than 2 classes; check the target column.")
        if len(classes) > max_levels * 5:
            raise SchemaError(f"column '{target}': {len(classes)} distinct values; a "
                              f"classification target needs a few classes.")
        task = {"type": "classification", "target": target, "classes": classes}
    else:
        assert time is not None and event is not None
        t = _numbers(df[time][~missing_mask(df[time])])
        if t is None or t.size == 0 or (t <= 0).any():
            raise SchemaError(f"column '{time}': survival times must be numbers > 0.")
        e = _numbers(df[event][~missing_mask(df[event])])
        if e is None or not set(np.unique(e).tolist()) <= {0.0, 1.0}:
            raise SchemaError(f"column '{event}': events must be coded 0/1.")
        tmin = _clean(10.0 ** math.floor(math.log10(float(t.min()))))
        tmax = nice_bounds(tmin, float(t.max()))[1]
        hz = sorted({_round_sig(float(q)) for q in np.quantile(t, [0.25, 0.5, 0.75])})
        hz = [h for h in hz if tmin < h < tmax] or [_round_sig(math.sqrt(tmin * tmax))]
        task = {"type": "survival", "time": time, "event": event, "time_min": tmin,
                "time_max": tmax, "horizons": hz}
    schema = Schema.from_dict({"name": name, "columns": columns, "task": task,
                               "bounds_source": "inferred"}, source=name)
    warnings.warn(INFERRED_SCHEMA_WARNING, PublicBoundsWarning, stacklevel=2)
    return schema
