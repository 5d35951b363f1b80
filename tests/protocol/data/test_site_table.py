"""Site data ingress: every bad input gives a one-line DataError naming file, row, column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcondense.protocol.data.schema import Schema
from fedcondense.protocol.data.site_table import (
    check_site_table,
    load_site_table,
    normalise_label,
    summarize_site_table,
)
from fedcondense.protocol.errors import DataError

CLS = Schema.from_dict({
    "name": "toy",
    "columns": [
        {"name": "age", "kind": "numeric", "min": 18, "max": 100, "integer": True},
        {"name": "grade", "kind": "categorical", "levels": ["I", "II", "III"]},
        {"name": "smoker", "kind": "binary"},
    ],
    "task": {"type": "classification", "target": "outcome", "classes": ["0", "1"]},
})
SURV = Schema.from_dict({
    "name": "toysurv",
    "columns": [{"name": "age", "kind": "numeric", "min": 18, "max": 100}],
    "task": {"type": "survival", "time": "time", "event": "event", "time_min": 1,
             "time_max": 1000, "horizons": [100, 500]},
})
GOOD = ["age,grade,smoker,outcome", "50,I,0,0", "60,II,1,1", "70,III,0,1", "40,I,1,0"]
SGOOD = ["age,time,event", "50,10,1", "60,200.5,0", "70,999,1"]


def write(tmp_path: Path, lines: list[str], name: str = "site.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def expect_error(path: Path, schema: Schema, *fragments: str, **kw: object) -> str:
    before = path.read_bytes() if path.exists() else None
    kw.setdefault("min_rows", 1)
    with pytest.raises(DataError) as info:
        load_site_table(path, schema, **kw)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    for f in fragments:
        assert f in msg, (f, msg)
    if before is not None:
        assert path.read_bytes() == before
    return msg


def test_good_classification_table(tmp_path):
    # columns in another order than the schema: frame comes back in schema order
    p = write(tmp_path, ["outcome,smoker,grade,age", "0,0,I,50", "1.0,1,II,60", "1,0,III,70"])
    t = load_site_table(p, CLS, min_rows=1)
    assert list(t.frame.columns) == CLS.all_columns
    assert t.n_rows == 3 and t.X.shape == (3, 5)
    assert t.y.tolist() == [0, 1, 1] and t.time is None and t.event is None
    assert t.frame["age"].dtype == np.float64 and t.frame["smoker"].dtype == np.int64
    assert t.frame["grade"].tolist() == ["I", "II", "III"]
    assert t.report["dropped_missing"] == 0 and t.report["clipped"] == 0


def test_labels_normalised():
    assert normalise_label("1.0") == normalise_label(1) == normalise_label(" 1 ") == "1"
    assert normalise_label(1.5) == "1.5" and normalise_label("abc") == "abc"


def test_numeric_class_labels_any_spelling(tmp_path):
    p = write(tmp_path, ["age,grade,smoker,outcome", "50,I,0,0.0", "60,II,1,1", "70,I,0,1.00"])
    assert load_site_table(p, CLS, min_rows=1).y.tolist() == [0, 1, 1]


def test_survival_table(tmp_path):
    t = load_site_table(write(tmp_path, SGOOD), SURV, min_rows=1)
    assert t.time.tolist() == [10.0, 200.5, 999.0] and t.event.tolist() == [1, 0, 1]
    assert t.y is None and t.frame["event"].dtype == np.int64


def test_parquet_and_row_numbers(tmp_path):
    df = pd.DataFrame({"age": [50, 60, 500], "grade": ["I", "II", "I"], "smoker": [0, 1, 1],
                       "outcome": [0, 1, 1]})
    p = tmp_path / "site.parquet"
    df.iloc[:2].to_parquet(p)
    assert load_site_table(p, CLS, min_rows=1).y.tolist() == [0, 1]
    df.to_parquet(p)
    expect_error(p, CLS, "row 3,", "column 'age'", "outside the public bounds")


def test_file_missing(tmp_path):
    expect_error(tmp_path / "nope.csv", CLS, "file not found")


def test_unsupported_suffix(tmp_path):
    expect_error(write(tmp_path, GOOD, "site.xlsx"), CLS, "unsupported file type", "CSV")


def test_empty_file(tmp_path):
    p = tmp_path / "site.csv"
    p.write_bytes(b"")
    expect_error(p, CLS, "the file is empty", "header")


def test_header_only(tmp_path):
    expect_error(write(tmp_path, GOOD[:1]), CLS, "no data rows")


def test_no_header(tmp_path):
    expect_error(write(tmp_path, GOOD[1:]), CLS, "row 1 (header)", "column '50'", "lack a header")


def test_not_utf8(tmp_path):
    p = tmp_path / "site.csv"
    p.write_bytes("age,grade\n\xe9t\xe9,I\n".encode("latin-1"))
    expect_error(p, CLS, "not UTF-8")


def test_ragged_row(tmp_path):
    expect_error(write(tmp_path, GOOD + ["50,I,0,1,extra"]), CLS, "row 6", "5 cells", "header has 4")


def test_missing_column_with_hint(tmp_path):
    lines = ["Age,grade,smoker,outcome"] + GOOD[1:]
    expect_error(write(tmp_path, lines), CLS, "row 1 (header)", "column 'age'", "missing",
                 "'Age'")


def test_extra_column(tmp_path):
    lines = [GOOD[0] + ",patient_id"] + [g + f",{i}" for i, g in enumerate(GOOD[1:])]
    expect_error(write(tmp_path, lines), CLS, "column 'patient_id'", "not in schema",
                 "remove it", "add it to the schema")


def test_duplicate_column(tmp_path):
    lines = ["age,grade,smoker,outcome,age"] + [g + ",1" for g in GOOD[1:]]
    expect_error(write(tmp_path, lines), CLS, "column 'age'", "twice")


def test_semicolon_delimiter(tmp_path):
    expect_error(write(tmp_path, [g.replace(",", ";") for g in GOOD]), CLS, "delimiter")


def test_text_in_numeric(tmp_path):
    lines = GOOD + ["abc,I,0,1"]
    expect_error(write(tmp_path, lines), CLS, "row 6, column 'age'", "'abc' is not a finite number")


def test_decimal_comma_hint(tmp_path):
    lines = GOOD + ['"50,5",I,0,1']
    expect_error(write(tmp_path, lines), CLS, "row 6, column 'age'", "decimal separator")


def test_missing_cells_refused_then_dropped(tmp_path):
    lines = GOOD + [",I,0,1", "55,NA,1,0", "56,II,1,1"]
    p = write(tmp_path, lines)
    expect_error(p, CLS, "row 6, column 'age'", "empty cell", "2 rows", "drop_missing")
    t = load_site_table(p, CLS, drop_missing=True, min_rows=1)
    assert t.n_rows == 5
    assert t.report["dropped_missing"] == 2 and t.report["rows_read"] == 7
    assert t.report["missing_by_column"] == {"age": 1, "grade": 1}


def test_out_of_bounds_refused_then_clipped(tmp_path):
    p = write(tmp_path, GOOD + ["130,I,0,1", "5,I,0,1"])
    expect_error(p, CLS, "row 6, column 'age'", "130", "[18, 100]", "2 such rows",
                 "clip_to_bounds")
    t = load_site_table(p, CLS, clip_to_bounds=True, min_rows=1)
    assert t.frame["age"].tolist()[-2:] == [100.0, 18.0]
    assert t.report["clipped"] == 2 and t.report["clipped_by_column"] == {"age": 2}
    assert t.X.min() >= -1 and t.X.max() <= 1


def test_unknown_level(tmp_path):
    expect_error(write(tmp_path, GOOD + ["50,IV,0,1"]), CLS, "row 6, column 'grade'", "'IV'",
                 "allowed: I, II, III")


def test_binary_not_zero_one(tmp_path):
    expect_error(write(tmp_path, GOOD + ["50,I,2,1"]), CLS, "row 6, column 'smoker'",
                 "'2' is not 0 or 1")
    expect_error(write(tmp_path, GOOD + ["50,I,yes,1"]), CLS, "row 6, column 'smoker'")


def test_unknown_class(tmp_path):
    expect_error(write(tmp_path, GOOD + ["50,I,0,2"]), CLS, "row 6, column 'outcome'",
                 "class '2'", "allowed: 0, 1")


def test_single_class(tmp_path):
    lines = [GOOD[0], "50,I,0,1", "60,II,1,1", "61,II,1,1.0"]
    p = write(tmp_path, lines)
    expect_error(p, CLS, "row 2, column 'outcome'", "every row has class '1'", "2 classes")
    assert load_site_table(p, CLS, min_rows=1, allow_single_class=True).n_rows == 3


@pytest.mark.parametrize("bad,text", [("0", "not > 0"), ("-3", "not > 0"),
                                      ("soon", "not a finite number")])
def test_survival_time_bad(tmp_path, bad, text):
    expect_error(write(tmp_path, SGOOD + [f"50,{bad},1"]), SURV, "row 5, column 'time'", text)


def test_event_not_zero_one(tmp_path):
    expect_error(write(tmp_path, SGOOD + ["50,10,2"]), SURV, "row 5, column 'event'", "0/1")


def test_survival_time_bounds(tmp_path):
    p = write(tmp_path, SGOOD + ["50,5000,1"])
    expect_error(p, SURV, "row 5, column 'time'", "outside the public bounds [1, 1000]")
    t = load_site_table(p, SURV, clip_to_bounds=True, min_rows=1)
    assert t.time[-1] == 1000.0 and t.report["clipped_by_column"] == {"time": 1}


def test_too_few_rows(tmp_path):
    msg = expect_error(write(tmp_path, GOOD), CLS, "only 4 usable rows", "at least 10",
                       "privacy", min_rows=10)
    assert "row" in msg
    expect_error(write(tmp_path, GOOD + [",I,0,1"]), CLS, "after dropping 1", "at least 5",
                 "for the test", drop_missing=True, min_rows=5, min_rows_reason="for the test")


def test_check_site_table_counts_only(tmp_path):
    p = write(tmp_path, GOOD + ["99.5,I,0,1", ",II,1,0", "130,I,0,1"])
    out = check_site_table(p, CLS, min_rows=3)
    assert out["rows"] == 6 and out["class_counts"] == {"0": 2, "1": 4}
    assert out["dropped_missing"] == 1 and out["clipped"] == 1 and not out["ready"]
    assert "99.5" not in repr(out) and "130" not in repr(out)
    ok = check_site_table(write(tmp_path, GOOD, "ok.csv"), CLS, min_rows=3)
    assert ok["ready"] and ok["problems"] == []
    s = summarize_site_table(load_site_table(write(tmp_path, SGOOD, "s.csv"), SURV, min_rows=1))
    assert s["events"] == 2 and s["censored"] == 1
