"""Consortium schema: validation errors and a stable hash."""

from __future__ import annotations

import json

import pytest

from fedcondense.protocol.data.schema import ClassificationTask, Schema, SurvivalTask
from fedcondense.protocol.errors import SchemaError

BASE = {
    "format": "fedcondense-schema/1",
    "name": "toy",
    "columns": [
        {"name": "age", "kind": "numeric", "min": 18, "max": 90, "integer": True},
        {"name": "grade", "kind": "categorical", "levels": ["I", "II", "III"]},
        {"name": "smoker", "kind": "binary"},
    ],
    "task": {"type": "classification", "target": "y", "classes": [0, 1]},
    "subgroups": ["grade"],
}
SURV_TASK = {"type": "survival", "time": "t", "event": "e", "time_min": 1, "time_max": 3000,
             "horizons": [730, 365]}


def variant(**changes):
    raw = json.loads(json.dumps(BASE))
    raw.update(changes)
    return raw


def test_round_trip_and_accessors(tmp_path):
    s = Schema.from_dict(BASE)
    assert s.feature_names == ["age", "grade", "smoker"] and s.all_columns[-1] == "y"
    assert isinstance(s.task, ClassificationTask) and s.task.classes == ("0", "1")
    assert s.n_classes == 2 and not s.is_survival
    p = tmp_path / "s.json"
    s.save(p)
    again = Schema.load(p)
    assert again == s and again.hash() == s.hash() and again.source == str(p)


def test_survival_horizons_sorted():
    s = Schema.from_dict(variant(task=SURV_TASK))
    assert isinstance(s.task, SurvivalTask) and s.task.horizons == (365.0, 730.0)
    assert s.task_columns == ["t", "e"] and s.is_survival and s.n_classes == 0


def test_hash_ignores_key_order_and_whitespace(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(BASE, indent=4))
    shuffled = {k: BASE[k] for k in reversed(list(BASE))}
    shuffled["columns"] = [dict(reversed(list(c.items()))) for c in BASE["columns"]]
    b.write_text(json.dumps(shuffled, separators=(",", ":")))
    assert Schema.load(a).hash() == Schema.load(b).hash()
    assert len(Schema.load(a).hash()) == 64


def test_hash_changes_with_a_bound():
    raw = variant()
    raw["columns"][0]["max"] = 91
    assert Schema.from_dict(raw).hash() != Schema.from_dict(BASE).hash()
    raw2 = variant()
    raw2["columns"][1]["levels"] = ["I", "III", "II"]
    assert Schema.from_dict(raw2).hash() != Schema.from_dict(BASE).hash()


def test_load_errors(tmp_path):
    with pytest.raises(SchemaError, match="schema file not found"):
        Schema.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",\n "columns": [}')
    with pytest.raises(SchemaError, match=r"line 2 column .*not valid JSON"):
        Schema.load(bad)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"name": "\xe9"}'.encode("latin-1"))
    with pytest.raises(SchemaError, match="UTF-8"):
        Schema.load(latin)


def _col(i, **kw):
    raw = variant()
    raw["columns"][i].update(kw)
    return raw


@pytest.mark.parametrize("raw,text", [
    ([1, 2], "must be a JSON object"),
    (variant(format="other/2"), "not supported"),
    (variant(columns=[]), "non-empty list"),
    (_col(0, kind="text"), "kind 'text'"),
    (_col(0, name=""), "no 'name'"),
    (_col(0, min="low"), "finite number"),
    (_col(0, min=100), "must be below max"),
    (_col(0, integer="yes"), "'integer' must be true or false"),
    (_col(1, levels=["I"]), "at least 2 'levels'"),
    (_col(1, levels=["I", "I"]), "duplicate levels"),
    (variant(columns=BASE["columns"] + [BASE["columns"][0]]), "listed twice"),
    (variant(task={"type": "regression"}), "task type"),
    (variant(task={"type": "classification", "target": "y", "classes": [1]}), "at least 2"),
    (variant(task={"type": "classification", "target": "age", "classes": [0, 1]}),
     "both a feature column and a task column"),
    (variant(task={**SURV_TASK, "time_min": 0}), "0 < time_min"),
    (variant(task={**SURV_TASK, "horizons": [5000]}), "strictly between"),
    (variant(task={**SURV_TASK, "horizons": []}), "horizons"),
    (variant(task={**SURV_TASK, "event": "t"}), "different columns"),
    (variant(subgroups=["nope"]), "subgroups"),
    (variant(bounds_source="public"), "'bounds_source' must be \"declared\""),
    (variant(bounds_source=None), "'bounds_source'"),
])
def test_validation_errors(raw, text):
    with pytest.raises(SchemaError) as info:
        Schema.from_dict(raw, source="s.json")
    assert text in str(info.value) and "\n" not in str(info.value)


def test_bounds_source_defaults_to_declared_and_is_hashed(tmp_path):
    declared = Schema.from_dict(BASE)
    assert declared.bounds_source == "declared" and declared.inferred_bounds_warning is None
    assert Schema.from_dict(variant(bounds_source="declared")) == declared
    inferred = Schema.from_dict(variant(bounds_source="inferred"), source="s.json")
    assert inferred.bounds_source == "inferred" and inferred.hash() != declared.hash()
    assert inferred.inferred_bounds_warning.startswith("s.json: ")
    assert "not private" in inferred.inferred_bounds_warning
    p = tmp_path / "inferred.json"
    inferred.save(p)
    assert json.loads(p.read_text())["bounds_source"] == "inferred"
    assert Schema.load(p) == inferred and Schema.load(p).hash() == inferred.hash()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(variant(bounds_source="data")))
    with pytest.raises(SchemaError, match=f"^{bad}: 'bounds_source'"):
        Schema.load(bad)

