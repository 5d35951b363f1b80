"""Starter schemas from data: kinds, nice outward bounds, horizons, and the warning."""

from __future__ import annotations

import pandas as pd
import pytest

from fedcondense.protocol.data.schema_infer import PublicBoundsWarning, infer_schema, nice_bounds
from fedcondense.protocol.errors import SchemaError


def test_nice_bounds():
    assert nice_bounds(29, 77) == (20, 80)
    assert nice_bounds(126, 564) == (100, 600)
    assert nice_bounds(0.0, 6.2) == (0, 7)
    assert nice_bounds(0.05, 0.3) == (0, 0.3)
    assert nice_bounds(-3.5, 2) == (-4, 2)
    assert nice_bounds(5, 5) == (5, 6)


def test_infer_classification_kinds():
    df = pd.DataFrame({"age": ["29", "77", "50", ""], "bmi": [18.5, 31.2, 22.0, 25.0],
                       "smoker": ["0", "1", "1", "0"], "grade": ["I", "II", "III", "I"],
                       "y": ["1.0", "0", "1", "0"]})
    with pytest.warns(PublicBoundsWarning, match="NOT private"):
        s = infer_schema(df, target="y", name="toy")
    age, bmi, smoker, grade = s.columns
    assert (age.kind, age.min, age.max, age.integer) == ("numeric", 20, 80, True)
    assert (bmi.kind, bmi.min, bmi.max, bmi.integer) == ("numeric", 10, 40, False)
    assert smoker.kind == "binary" and grade.levels == ("I", "II", "III")
    assert s.task.classes == ("0", "1") and s.name == "toy"


def test_infer_survival_horizons():
    t = [float(x) for x in range(8, 2660, 10)]
    df = pd.DataFrame({"x": range(len(t)), "time": t, "cens": [i % 2 for i in range(len(t))]})
    with pytest.warns(PublicBoundsWarning):
        s = infer_schema(df, time="time", event="cens")
    assert s.task.time_min == 1 and s.task.time_max == 3000
    assert s.task.horizons == (670.0, 1300.0, 2000.0)


@pytest.mark.parametrize("kw,text", [
    ({"target": "y", "time": "t"}, "not both"),
    ({"time": "t"}, "--event"),
    ({"target": "nope"}, "'nope'"),
    ({"time": "t", "event": "t"}, "different"),
])
def test_infer_option_errors(kw, text):
    df = pd.DataFrame({"x": [1, 2], "y": [0, 1], "t": [1, 2]})
    with pytest.raises(SchemaError, match=text):
        infer_schema(df, **kw)


def test_infer_refuses_identifier_and_bad_survival():
    df = pd.DataFrame({"id": [f"p{i}" for i in range(20)], "y": [i % 2 for i in range(20)]})
    with pytest.raises(SchemaError, match="'id'.*too many"):
        infer_schema(df, target="y")
    df = pd.DataFrame({"x": [1, 2, 3], "t": [0, 5, 9], "e": [0, 1, 1]})
    with pytest.raises(SchemaError, match="> 0"):
        infer_schema(df, time="t", event="e")
    df = pd.DataFrame({"x": [1, 2, 3], "t": [1, 5, 9], "e": [0, 2, 1]})
    with pytest.raises(SchemaError, match="0/1"):
        infer_schema(df, time="t", event="e")
