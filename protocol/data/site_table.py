"""Site data ingress: read one site's table and check it against the consortium schema.

:func:`load_site_table` reads a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``)
file, never modifies it, and returns a :class:`SiteTable` whose values are typed, in the
schema's column order, and encoded with :class:`~fedcondense.protocol.data.encoding.Encoder`.

Reading the file is :mod:`fedcondense.protocol.data.table_file`; this module checks the cells.
Every problem raises :class:`~fedcondense.protocol.errors.DataError` with one line::

    FILE: row R, column 'C': what is wrong; how to fix it.

**Row numbers** are the ones a person sees: for CSV, the line of the file (the header is
row 1, so the first data row is row 2; a quoted cell spanning lines counts as its last line);
for Parquet, which has no header line, the first data row is row 1. Problems with the header
itself name ``header``.

Empty cells (``""``, ``NA``, ``NaN``, ``null``, ``None``, ``?``, ...) are refused unless
``drop_missing=True``, which drops those rows; values outside the public bounds are refused
unless ``clip_to_bounds=True``, which clips them. Both are counted in :attr:`SiteTable.report`
(counts only, never values), which is what travels into ``run.json``.

Class labels and categorical levels are compared as normalised strings, so ``1``, ``"1"``
and ``"1.0"`` all match a schema class ``"1"``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .encoding import Encoder
from .schema import ClassificationTask, Schema, SurvivalTask
from .table_file import CSV_SUFFIXES, RawTable, read_raw_table

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "?", "."})
DEFAULT_MIN_ROWS = 10
_DEFAULT_REASON = ("the privacy parameters (Poisson sampling rate, delta < 1/n) and the model "
                   "fits need enough records")


@dataclass(frozen=True, eq=False)
class SiteTable:
    """A validated site table.

    ``frame`` holds typed values in ``schema.all_columns`` order: numeric ``float``,
    categorical ``str`` (a schema level), binary ``int`` 0/1, the classification target as the
    class *index* 0..K-1, survival time ``float`` > 0 and event ``int`` 0/1. ``X`` is the (n, d)
    encoded feature matrix; ``y`` the class indices (classification) or ``time``/``event``
    (survival), the others ``None``. ``report`` counts what ingress did: ``rows_read``,
    ``rows_kept``, ``dropped_missing``, ``missing_by_column``, ``clipped``,
    ``clipped_by_column`` (counts only, never values).
    """

    schema: Schema
    source: Path
    frame: pd.DataFrame
    X: np.ndarray
    y: np.ndarray | None = None
    time: np.ndarray | None = None
    event: np.ndarray | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(len(self.frame))


# ---------------------------------------------------------------------- cell helpers
def normalise_label(value: Any) -> str:
    """Canonical string of a label: numeric-looking values lose trailing zeros (``1.0``→``1``)."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    s = str(value).strip()
    try:
        f = float(s)
    except ValueError:
        return s
    if not math.isfinite(f):
        return s
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def missing_mask(series: pd.Series) -> np.ndarray:
    """True where a raw cell is empty/NA."""
    na = series.isna().to_numpy()
    text = series.astype(str).str.strip().str.lower().isin(MISSING_TOKENS).to_numpy()
    return na | text


def _to_float(series: pd.Series) -> np.ndarray:
    """Parse raw cells as floats; NaN where not a finite number."""
    s = series.map(lambda v: v.strip() if isinstance(v, str) else v)
    s = s.map(lambda v: int(v) if isinstance(v, (bool, np.bool_)) else v)
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    x[~np.isfinite(x)] = np.nan
    return x


def _fmt(x: float) -> str:
    return f"{x:g}"


class _Checker:
    """Column checks with uniform one-line messages."""

    def __init__(self, raw: RawTable) -> None:
        self.path = raw.path
        self.rows = raw.rows

    def fail(self, i: int, column: str, problem: str, fix: str) -> None:
        raise DataError(f"{self.path}: row {self.rows[i]}, column '{column}': {problem}; {fix}.")

    def numbers(self, series: pd.Series, column: str) -> np.ndarray:
        x = _to_float(series)
        bad = np.flatnonzero(np.isnan(x))
        if bad.size:
            val = str(series.iloc[bad[0]]).strip()
            hint = " (use '.' as the decimal separator)" if "," in val else ""
            self.fail(bad[0], column, f"'{val[:40]}' is not a finite number ({bad.size} such "
                      f"row{'s' if bad.size > 1 else ''})", f"fix the value{hint}")
        return x

    def zero_one(self, series: pd.Series, column: str, what: str) -> np.ndarray:
        norm = series.map(normalise_label).str.lower()
        norm = norm.replace({"true": "1", "false": "0"})
        bad = np.flatnonzero(~norm.isin(["0", "1"]).to_numpy())
        if bad.size:
            val = str(series.iloc[bad[0]]).strip()
            self.fail(bad[0], column, f"'{val[:40]}' is not 0 or 1 ({bad.size} such row"
                      f"{'s' if bad.size > 1 else ''})", f"code {what} as 0/1")
        return (norm == "1").to_numpy().astype(np.int64)

    def labels(self, series: pd.Series, column: str, allowed: tuple[str, ...],
               what: str) -> np.ndarray:
        lookup = {normalise_label(a): k for k, a in enumerate(allowed)}
        uniq = {v: normalise_label(v) for v in pd.unique(series)}
        codes = series.map(lambda v: lookup.get(uniq[v], -1)).to_numpy(dtype=np.int64)
        bad = np.flatnonzero(codes < 0)
        if bad.size:
            val = str(series.iloc[bad[0]]).strip()
            self.fail(bad[0], column, f"{what} '{val[:40]}' is not in the schema "
                      f"({bad.size} such row{'s' if bad.size > 1 else ''}); allowed: "
                      f"{', '.join(allowed)}", "recode the value or add it to the schema")
        return codes

    def bounds(self, x: np.ndarray, column: str, lo: float, hi: float, clip: bool,
               counts: dict[str, int]) -> np.ndarray:
        out = (x < lo) | (x > hi)
        if not out.any():
            return x
        if not clip:
            i = int(np.flatnonzero(out)[0])
            self.fail(i, column, f"{_fmt(x[i])} is outside the public bounds [{_fmt(lo)}, "
                      f"{_fmt(hi)}] ({int(out.sum())} such row{'s' if out.sum() > 1 else ''})",
                      "fix the value, or pass clip_to_bounds=True (--clip-to-bounds) to clip "
                      "such values (counted in the report)")
        counts[column] = int(out.sum())
        return np.clip(x, lo, hi)


# ---------------------------------------------------------------------- validation
def _check_columns(raw: RawTable, schema: Schema) -> None:
    p, have, want = raw.path, list(raw.frame.columns), schema.all_columns
    where = "row 1 (header)" if p.name.lower().endswith(CSV_SUFFIXES) else "header"
    for c in want:
        if c not in have:
            close = difflib.get_close_matches(c, [h for h in have if h not in want], n=1)
            close = close or [h for h in have if h.lower() == c.lower()]
            hint = f" (the file has '{close[0]}': rename it)" if close else ""
            raise DataError(f"{p}: {where}, column '{c}': missing; schema '{schema.name}' needs "
                            f"{len(want)} columns{hint}; add the column to the file.")
    for c in have:
        if c not in want:
            raise DataError(f"{p}: {where}, column '{c}': not in schema '{schema.name}'; remove "
                            f"it from the file (e.g. an ID column) or add it to the schema.")


def _validate(raw: RawTable, schema: Schema, drop_missing: bool, clip_to_bounds: bool,
              min_rows: int, min_rows_reason: str | None, allow_single_class: bool) -> SiteTable:
    _check_columns(raw, schema)
    p = raw.path
    frame = raw.frame[schema.all_columns]
    n_read = len(frame)
    miss = {c: missing_mask(frame[c]) for c in schema.all_columns}
    missing_by_column = {c: int(m.sum()) for c, m in miss.items() if m.any()}
    any_missing = np.zeros(n_read, dtype=bool)
    for m in miss.values():
        any_missing |= m
    if any_missing.any() and not drop_missing:
        i = int(np.flatnonzero(any_missing)[0])
        col = next(c for c in schema.all_columns if miss[c][i])
        raise DataError(f"{p}: row {raw.rows[i]}, column '{col}': empty cell ("
                        f"{int(any_missing.sum())} rows have empty cells, in "
                        f"{len(missing_by_column)} column{'s' if len(missing_by_column) > 1 else ''})"
                        f"; fill them in, or pass drop_missing=True (--drop-missing) to drop "
                        f"those rows (counted in the report).")
    keep = ~any_missing
    raw = RawTable(p, frame.loc[keep].reset_index(drop=True), raw.rows[keep])
    frame = raw.frame
    n = len(frame)
    if n < max(min_rows, 1):
        dropped = f" after dropping {int(any_missing.sum())} with empty cells" if any_missing.any() else ""
        raise DataError(f"{p}: only {n} usable rows{dropped}; at least {max(min_rows, 1)} are needed "
                        f"({min_rows_reason or _DEFAULT_REASON}); use a larger table.")
    chk = _Checker(raw)
    clipped: dict[str, int] = {}
    out: dict[str, Any] = {}
    for spec in schema.columns:
        s = frame[spec.name]
        if spec.kind == "numeric":
            assert spec.min is not None and spec.max is not None
            x = chk.numbers(s, spec.name)
            out[spec.name] = chk.bounds(x, spec.name, spec.min, spec.max, clip_to_bounds, clipped)
        elif spec.kind == "binary":
            out[spec.name] = chk.zero_one(s, spec.name, "the column")
        else:
            codes = chk.labels(s, spec.name, spec.levels, "level")
            out[spec.name] = np.asarray(spec.levels, dtype=object)[codes]
    y = t = e = None
    task = schema.task
    if isinstance(task, ClassificationTask):
        y = chk.labels(frame[task.target], task.target, task.classes, "class")
        present = np.unique(y)
        if present.size < 2 and not allow_single_class:
            raise DataError(f"{p}: row {raw.rows[0]}, column '{task.target}': every row has "
                            f"class '{task.classes[int(present[0])]}'; a table needs at least "
                            f"2 classes to condense or fit classifiers; add records of "
                            f"another class.")
        out[task.target] = y
    else:
        assert isinstance(task, SurvivalTask)
        t = chk.numbers(frame[task.time], task.time)
        nonpos = np.flatnonzero(t <= 0)
        if nonpos.size:
            chk.fail(int(nonpos[0]), task.time, f"survival time {_fmt(t[nonpos[0]])} is not > 0 "
                     f"({nonpos.size} such row{'s' if nonpos.size > 1 else ''})",
                     "times must be positive follow-up durations; fix or remove the row")
        t = chk.bounds(t, task.time, task.time_min, task.time_max, clip_to_bounds, clipped)
        e = chk.zero_one(frame[task.event], task.event, "events (1 = event, 0 = censored)")
        out[task.time], out[task.event] = t, e
    typed = pd.DataFrame(out, columns=schema.all_columns)
    report = {
        "rows_read": int(n_read),
        "rows_kept": int(n),
        "dropped_missing": int(any_missing.sum()),
        "missing_by_column": missing_by_column,
        "clipped": int(sum(clipped.values())),
        "clipped_by_column": clipped,
    }
    X = Encoder(schema).encode_features(typed)
    return SiteTable(schema=schema, source=p, frame=typed, X=X, y=y, time=t, event=e,
                     report=report)


def load_site_table(path: str | Path, schema: Schema, *, drop_missing: bool = False,
                    clip_to_bounds: bool = False, min_rows: int = DEFAULT_MIN_ROWS,
                    min_rows_reason: str | None = None,
                    allow_single_class: bool = False) -> SiteTable:
    """Read and validate a site's table against the consortium schema.

    Parameters
    ----------
    path : str or Path
        CSV or Parquet file (chosen by suffix). It is only read, never modified.
    schema : Schema
        The consortium schema; the file must have exactly its columns (any order).
    drop_missing : bool
        Drop rows with empty cells (counted) instead of refusing the file.
    clip_to_bounds : bool
        Clip numeric values and survival times outside the public bounds (counted) instead
        of refusing the file.
    min_rows : int
        Fewest usable rows accepted.
    min_rows_reason : str, optional
        Why ``min_rows`` rows are needed, quoted in the error message.
    allow_single_class : bool
        Accept a classification table in which only one class occurs.

    Returns
    -------
    SiteTable

    Raises
    ------
    DataError
        With a one-line message naming the file, row, column and the fix.
    """
    return _validate(read_raw_table(path, schema.all_columns), schema, drop_missing, clip_to_bounds, min_rows,
                     min_rows_reason, allow_single_class)


def ingress_line(report: dict[str, Any]) -> str:
    """One line of what ingress did (rows read/kept, dropped, clipped): for the data holder's
    own console or log only — exact counts are not covered by any ε."""
    line = f"{report['rows_kept']} of {report['rows_read']} rows used"
    if report["dropped_missing"]:
        line += f", {report['dropped_missing']} dropped for empty cells"
    if report["clipped"]:
        cols = ", ".join(f"{k}: {v}" for k, v in report["clipped_by_column"].items() if v)
        line += f", {report['clipped']} values clipped to the public bounds ({cols})"
    return line


def summarize_site_table(table: SiteTable) -> dict[str, Any]:
    """Counts-only summary of a loaded table (no record values): rows, classes/events, report."""
    schema = table.schema
    out: dict[str, Any] = {"file": str(table.source), "schema": schema.name,
                           "schema_hash": schema.hash(), "rows": table.n_rows}
    if isinstance(schema.task, ClassificationTask):
        assert table.y is not None
        counts = np.bincount(table.y, minlength=schema.n_classes)
        out["class_counts"] = {c: int(k) for c, k in zip(schema.task.classes, counts)}
    else:
        assert table.event is not None
        out["events"] = int(table.event.sum())
        out["censored"] = int(table.n_rows - table.event.sum())
    out.update({k: table.report[k] for k in ("rows_read", "dropped_missing",
                                            "missing_by_column", "clipped", "clipped_by_column")})
    return out


def check_site_table(path: str | Path, schema: Schema, *,
                     min_rows: int = DEFAULT_MIN_ROWS) -> dict[str, Any]:
    """Summarise a site file for ``fedcondense site check``: counts only, never values.

    The table is loaded leniently (rows with empty cells dropped, out-of-bound values
    clipped) to count what a strict load would refuse. ``ready`` is true when a strict load
    (the default of ``condense``) would accept the file as it is.

    Raises
    ------
    DataError
        When the file cannot be used even leniently (structure, types, unknown levels).
    """
    table = load_site_table(path, schema, drop_missing=True, clip_to_bounds=True, min_rows=0,
                            allow_single_class=True)
    out = summarize_site_table(table)
    problems: list[str] = []
    if table.report["dropped_missing"]:
        problems.append(f"{table.report['dropped_missing']} rows with empty cells")
    if table.report["clipped"]:
        problems.append(f"{table.report['clipped']} values outside the public bounds")
    if table.n_rows < min_rows:
        problems.append(f"{table.n_rows} usable rows, fewer than {min_rows}")
    if "class_counts" in out and sum(1 for k in out["class_counts"].values() if k) < 2:
        problems.append("only one class present")
    out["problems"] = problems
    out["ready"] = not problems
    return out
