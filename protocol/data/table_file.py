"""Reading one table file (CSV or Parquet) into raw cells with the row numbers a person sees.

The first half of site data ingress (:mod:`fedcondense.protocol.data.site_table` checks the cells
against the schema). Never modifies the file. Problems raise
:class:`~fedcondense.protocol.errors.DataError` with one line naming the file, the row and the
fix. **Row numbers**: for CSV the line of the file (header = row 1; a quoted cell spanning
lines counts as its last line); for Parquet, which has no header line, the first data row is
row 1.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class RawTable:
    """A file's cells before validation: ``frame`` of raw values, ``rows`` their row numbers."""

    path: Path
    frame: pd.DataFrame
    rows: np.ndarray


def _suffix_kind(p: Path) -> str:
    name = p.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise DataError(f"{p}: unsupported file type '{p.suffix or p.name}'; save the table as CSV "
                    f"(.csv) or Parquet (.parquet).")


def _check_header(p: Path, header: list[str], where: str, expected: list[str] | None) -> None:
    if not header or all(not h.strip() for h in header):
        raise DataError(f"{p}: {where}: no column names; the first row must name the columns.")
    if expected and not set(header) & set(expected):
        raise DataError(f"{p}: {where}, column '{header[0][:40]}': the header names none of the "
                        f"schema's columns; the file seems to lack a header row: add one "
                        f"({','.join(expected)[:80]}).")
    for i, h in enumerate(header):
        if not h.strip():
            raise DataError(f"{p}: {where}, column {i + 1}: empty column name; name every column.")
        if h in header[:i]:
            raise DataError(f"{p}: {where}, column '{h}': appears twice in the header; keep one "
                            f"column of each name.")


def _read_csv(p: Path, expected: list[str] | None) -> RawTable:
    try:
        data = p.read_bytes()
        text = (gzip.decompress(data) if p.name.lower().endswith(".gz") else data).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{p}: not UTF-8 text; save the table as UTF-8 CSV.") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{p}: cannot read the file ({exc}); check the path and permissions.") from None
    if not text.strip():
        raise DataError(f"{p}: the file is empty; it needs a header row naming the schema's "
                        f"columns and at least one data row.")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        while not header:  # leading blank lines
            header = next(reader)
        header_line = reader.line_num
        header = [h.strip() for h in header]
        records: list[list[str]] = []
        lines: list[int] = []
        for rec in reader:
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # blank line
            if len(rec) != len(header):
                raise DataError(
                    f"{p}: row {reader.line_num}: {len(rec)} cells but the header has "
                    f"{len(header)}; fix the delimiter/quoting of that row (commas inside "
                    f"values must be quoted).")
            records.append(rec)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{p}: row {reader.line_num}: not valid CSV ({exc}); fix the quoting.") from None
    where = f"row {header_line} (header)"
    if len(header) == 1 and any(d in header[0] for d in (";", "\t", "|")):
        raise DataError(f"{p}: {where}: the header is a single column '{header[0][:40]}'; the "
                        f"file seems to use another delimiter; save it comma-separated.")
    _check_header(p, header, where, expected)
    frame = pd.DataFrame(records, columns=header, dtype=object)
    return RawTable(p, frame, np.asarray(lines, dtype=np.int64))


def _read_parquet(p: Path, expected: list[str] | None) -> RawTable:
    try:
        frame = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{p}: not a readable Parquet file ({first[:120]}); re-export the "
                        f"table as Parquet or CSV.") from None
    header = [str(c) for c in frame.columns]
    _check_header(p, header, "header", expected)
    frame = frame.reset_index(drop=True)
    frame.columns = header
    return RawTable(p, frame.astype(object), np.arange(1, len(frame) + 1, dtype=np.int64))


def read_raw_table(path: str | Path, expected: list[str] | None = None) -> RawTable:
    """Read a CSV/Parquet file into raw cells (strings for CSV) with human row numbers.

    ``expected`` (the schema's columns, optional) detects a file without a header row.

    Raises
    ------
    DataError
        Missing/unreadable/empty file, unsupported suffix, bad or duplicate header names,
        ragged CSV rows.
    """
    p = Path(path)
    kind = _suffix_kind(p)
    if not p.exists():
        raise DataError(f"{p}: file not found; check the path.")
    if not p.is_file():
        raise DataError(f"{p}: is not a file; pass the table's file path.")
    raw = _read_csv(p, expected) if kind == "csv" else _read_parquet(p, expected)
    if len(raw.frame) == 0:
        raise DataError(f"{p}: the header has no data rows below it; the table needs at least "
                        f"one record.")
    return raw
