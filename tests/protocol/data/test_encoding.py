"""Encoder: round trips of real rows; any real-valued encoded row decodes to a valid row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedcondense.protocol.data.encoding import Encoder
from fedcondense.protocol.data.schema import Schema

SCHEMA = Schema.from_dict({
    "name": "toy",
    "columns": [
        {"name": "age", "kind": "numeric", "min": 18, "max": 90, "integer": True},
        {"name": "bmi", "kind": "numeric", "min": 10, "max": 60},
        {"name": "grade", "kind": "categorical", "levels": ["I", "II", "III"]},
        {"name": "smoker", "kind": "binary"},
        {"name": "dose", "kind": "numeric", "min": 0.5, "max": 2.5, "integer": True},
    ],
    "task": {"type": "survival", "time": "t", "event": "e", "time_min": 1, "time_max": 1000,
             "horizons": [100, 500]},
})


def rows() -> pd.DataFrame:
    return pd.DataFrame({"age": [18.0, 54.0, 90.0], "bmi": [10.0, 27.3, 60.0],
                         "grade": ["I", "III", "II"], "smoker": [0, 1, 1],
                         "dose": [1.0, 2.0, 1.0]})


def test_layout_and_labels():
    enc = Encoder(SCHEMA)
    assert enc.dim == 7
    assert enc.feature_labels() == ["age", "bmi", "grade=I", "grade=II", "grade=III",
                                    "smoker", "dose"]
    assert enc.lower.tolist() == [-1, -1, 0, 0, 0, 0, -1]


def test_round_trip():
    enc = Encoder(SCHEMA)
    df = rows()
    z = enc.encode_features(df)
    assert z.min() >= -1 and z.max() <= 1
    assert z[0, 0] == -1 and z[2, 0] == 1 and z[:, 2:5].sum(axis=1).tolist() == [1, 1, 1]
    back = enc.decode_features(z)
    assert list(back.columns) == SCHEMA.feature_names
    assert back["age"].tolist() == [18, 54, 90]
    assert np.allclose(back["bmi"], df["bmi"])
    assert back["grade"].tolist() == ["I", "III", "II"]
    assert back["smoker"].tolist() == [0, 1, 1] and back["dose"].tolist() == [1, 2, 1]
    assert np.allclose(enc.harden(z), z)


def test_decode_arbitrary_rows_is_valid():
    enc = Encoder(SCHEMA)
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(500, enc.dim))
    out = enc.decode_features(z)
    for col in SCHEMA.columns:
        v = out[col.name]
        if col.kind == "numeric":
            assert v.min() >= col.min and v.max() <= col.max
            if col.integer:
                assert np.all(v == np.round(v))
        elif col.kind == "binary":
            assert set(v) <= {0, 1}
        else:
            assert set(v) <= set(col.levels)
    z2 = enc.harden(z)
    assert np.all(z2 >= enc.lower) and np.all(z2 <= enc.upper)
    assert np.allclose(enc.harden(z2), z2)


def test_time_round_trip():
    enc = Encoder(SCHEMA)
    t = np.array([1.0, 10.0, 1000.0])
    u = enc.encode_time(t)
    assert u[0] == -1 and np.isclose(u[-1], 1)
    assert np.allclose(enc.decode_time(u), t)
    assert np.allclose(enc.decode_time(np.array([-5.0, 5.0])), [1.0, 1000.0])
