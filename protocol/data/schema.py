"""Consortium schema: the public description of the shared table that every party agrees on.

The schema is a JSON file shared by the server and all sites. It lists the feature columns with
their *public* bounds (numeric) or levels (categorical), and the task:

* ``classification`` — a ``target`` column and its ``classes``;
* ``survival`` — a ``time`` column with public bounds ``time_min``/``time_max``, an ``event``
  column coded 0/1, and public ``horizons`` at which the per-record survival loss is evaluated.

Bounds and levels must come from public knowledge (clinical ranges, data dictionaries), never
from the private tables: the privacy guarantee assumes they are data-independent. The optional
top-level key ``"bounds_source"`` says where they came from: ``"declared"`` (the default when
the key is absent: written from public knowledge) or ``"inferred"`` (read from a table by
``fedcondense schema infer``; NOT private). A deployed site refuses an inferred schema unless
its operator overrides it, and ``condense``/``simulate`` warn about one.

Example::

    {
      "format": "fedcondense-schema/1",
      "name": "gbsg2",
      "columns": [
        {"name": "age", "kind": "numeric", "min": 18, "max": 90, "integer": true},
        {"name": "horTh", "kind": "categorical", "levels": ["no", "yes"]},
        {"name": "menostat", "kind": "binary"}
      ],
      "task": {"type": "survival", "time": "time", "event": "cens",
               "time_min": 1, "time_max": 3000, "horizons": [365, 730, 1460]},
      "subgroups": ["horTh"],
      "bounds_source": "declared"
    }

:func:`Schema.hash` is the SHA-256 of a canonical JSON rendering; it travels with every
federated message so that parties with different schemas refuse to work together.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import SchemaError

SCHEMA_FORMAT = "fedcondense-schema/1"
ColumnKind = Literal["numeric", "categorical", "binary"]
_KINDS = ("numeric", "categorical", "binary")
BoundsSource = Literal["declared", "inferred"]
_BOUNDS_SOURCES = ("declared", "inferred")
INFERRED_BOUNDS_WARNING = (
    "the schema's bounds were inferred from data (\"bounds_source\": \"inferred\"), so they are "
    "not private: the release leaks them beyond its ε. Replace them by public bounds and set "
    "\"bounds_source\": \"declared\"."
)


@dataclass(frozen=True)
class Column:
    """One feature column with its public domain."""

    name: str
    kind: ColumnKind
    min: float | None = None
    max: float | None = None
    integer: bool = False
    levels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "numeric":
            out.update({"min": self.min, "max": self.max, "integer": self.integer})
        if self.kind == "categorical":
            out["levels"] = list(self.levels)
        return out


@dataclass(frozen=True)
class ClassificationTask:
    """Predict ``target`` (one of ``classes``)."""

    target: str
    classes: tuple[str, ...]
    type: Literal["classification"] = "classification"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "target": self.target, "classes": list(self.classes)}


@dataclass(frozen=True)
class SurvivalTask:
    """Time-to-event: ``time`` within public bounds, ``event`` in {0, 1}, public horizons."""

    time: str
    event: str
    time_min: float
    time_max: float
    horizons: tuple[float, ...]
    type: Literal["survival"] = "survival"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "time": self.time,
            "event": self.event,
            "time_min": self.time_min,
            "time_max": self.time_max,
            "horizons": list(self.horizons),
        }


Task = ClassificationTask | SurvivalTask


@dataclass(frozen=True)
class Schema:
    """A validated consortium schema (immutable)."""

    name: str
    columns: tuple[Column, ...]
    task: Task
    subgroups: tuple[str, ...] = field(default=())
    bounds_source: BoundsSource = "declared"
    source: str = field(default="<memory>", compare=False)

    # ------------------------------------------------------------------ accessors
    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def task_columns(self) -> list[str]:
        if isinstance(self.task, ClassificationTask):
            return [self.task.target]
        return [self.task.time, self.task.event]

    @property
    def all_columns(self) -> list[str]:
        return self.feature_names + self.task_columns

    @property
    def is_survival(self) -> bool:
        return isinstance(self.task, SurvivalTask)

    @property
    def n_classes(self) -> int:
        return len(self.task.classes) if isinstance(self.task, ClassificationTask) else 0

    @property
    def inferred_bounds_warning(self) -> str | None:
        """One-line warning when the bounds were read from data (``None`` when declared)."""
        if self.bounds_source == "declared":
            return None
        return f"{self.source}: {INFERRED_BOUNDS_WARNING}"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SCHEMA_FORMAT,
            "name": self.name,
            "columns": [c.to_dict() for c in self.columns],
            "task": self.task.to_dict(),
            "subgroups": list(self.subgroups),
            "bounds_source": self.bounds_source,
        }

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON rendering; independent of key order/spacing."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<memory>") -> "Schema":
        return _parse(raw, source)

    @classmethod
    def load(cls, path: str | Path) -> "Schema":
        p = Path(path)
        if not p.is_file():
            raise SchemaError(f"{p}: schema file not found; pass an existing JSON file to --schema.")
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SchemaError(
                f"{p}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}); fix the syntax."
            ) from None
        except UnicodeDecodeError:
            raise SchemaError(f"{p}: not UTF-8 text; save the schema as UTF-8 JSON.") from None
        return _parse(raw, str(p))


# ---------------------------------------------------------------------- parsing
def _num(value: Any, where: str, src: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"{src}: {where} must be a finite number, got {value!r}; fix the schema.")
    return float(value)


def _parse_column(raw: Any, i: int, src: str) -> Column:
    if not isinstance(raw, dict):
        raise SchemaError(f"{src}: columns[{i}] must be an object with 'name' and 'kind'.")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"{src}: columns[{i}] has no 'name'; give every column a non-empty name.")
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise SchemaError(
            f"{src}: column '{name}': kind {kind!r} is not one of {', '.join(_KINDS)}; fix 'kind'."
        )
    if kind == "numeric":
        if "min" not in raw or "max" not in raw:
            raise SchemaError(
                f"{src}: column '{name}': numeric columns need public 'min' and 'max' bounds."
            )
        lo = _num(raw["min"], f"column '{name}' min", src)
        hi = _num(raw["max"], f"column '{name}' max", src)
        if not lo < hi:
            raise SchemaError(f"{src}: column '{name}': min ({lo}) must be below max ({hi}).")
        integer = raw.get("integer", False)
        if not isinstance(integer, bool):
            raise SchemaError(f"{src}: column '{name}': 'integer' must be true or false.")
        return Column(name=name, kind="numeric", min=lo, max=hi, integer=integer)
    if kind == "categorical":
        levels = raw.get("levels")
        if not isinstance(levels, list) or len(levels) < 2:
            raise SchemaError(
                f"{src}: column '{name}': categorical columns need a list of at least 2 'levels'."
            )
        lv = tuple(str(x) for x in levels)
        if len(set(lv)) != len(lv):
            raise SchemaError(f"{src}: column '{name}': duplicate levels; list each level once.")
        return Column(name=name, kind="categorical", levels=lv)
    return Column(name=name, kind="binary")


def _parse_task(raw: Any, src: str) -> Task:
    if not isinstance(raw, dict):
        raise SchemaError(f"{src}: 'task' must be an object with a 'type'.")
    ttype = raw.get("type")
    if ttype == "classification":
        target = raw.get("target")
        classes = raw.get("classes")
        if not isinstance(target, str) or not target:
            raise SchemaError(f"{src}: task: classification needs a 'target' column name.")
        if not isinstance(classes, list) or len(classes) < 2:
            raise SchemaError(f"{src}: task: classification needs at least 2 'classes'.")
        cl = tuple(str(c) for c in classes)
        if len(set(cl)) != len(cl):
            raise SchemaError(f"{src}: task: duplicate classes; list each class once.")
        return ClassificationTask(target=target, classes=cl)
    if ttype == "survival":
        for key in ("time", "event"):
            if not isinstance(raw.get(key), str) or not raw.get(key):
                raise SchemaError(f"{src}: task: survival needs a '{key}' column name.")
        tmin = _num(raw.get("time_min"), "task time_min", src)
        tmax = _num(raw.get("time_max"), "task time_max", src)
        if not 0 < tmin < tmax:
            raise SchemaError(f"{src}: task: need 0 < time_min < time_max (public time bounds).")
        hz = raw.get("horizons")
        if not isinstance(hz, list) or not hz:
            raise SchemaError(f"{src}: task: survival needs a non-empty list of public 'horizons'.")
        horizons = tuple(sorted(_num(h, "task horizon", src) for h in hz))
        if horizons[0] <= tmin or horizons[-1] >= tmax:
            raise SchemaError(
                f"{src}: task: horizons must lie strictly between time_min and time_max."
            )
        return SurvivalTask(
            time=raw["time"], event=raw["event"], time_min=tmin, time_max=tmax, horizons=horizons
        )
    raise SchemaError(f"{src}: task type {ttype!r} must be 'classification' or 'survival'.")


def _parse(raw: Any, src: str) -> Schema:
    if not isinstance(raw, dict):
        raise SchemaError(f"{src}: the schema must be a JSON object.")
    fmt = raw.get("format", SCHEMA_FORMAT)
    if fmt != SCHEMA_FORMAT:
        raise SchemaError(f"{src}: format {fmt!r} is not supported; expected {SCHEMA_FORMAT!r}.")
    cols_raw = raw.get("columns")
    if not isinstance(cols_raw, list) or not cols_raw:
        raise SchemaError(f"{src}: 'columns' must be a non-empty list of feature columns.")
    columns = tuple(_parse_column(c, i, src) for i, c in enumerate(cols_raw))
    names = [c.name for c in columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SchemaError(f"{src}: column '{dup[0]}' is listed twice; list each column once.")
    task = _parse_task(raw.get("task"), src)
    task_cols = [task.target] if isinstance(task, ClassificationTask) else [task.time, task.event]
    for tc in task_cols:
        if tc in names:
            raise SchemaError(
                f"{src}: '{tc}' is both a feature column and a task column; remove it from 'columns'."
            )
    if len(set(task_cols)) != len(task_cols):
        raise SchemaError(f"{src}: task: time and event must be different columns.")
    subgroups = raw.get("subgroups", [])
    if not isinstance(subgroups, list) or any(s not in names for s in subgroups):
        raise SchemaError(f"{src}: 'subgroups' must list feature column names from 'columns'.")
    name = raw.get("name", "dataset")
    if not isinstance(name, str):
        raise SchemaError(f"{src}: 'name' must be a string.")
    bounds_source = raw.get("bounds_source", "declared")
    if bounds_source not in _BOUNDS_SOURCES:
        raise SchemaError(
            f"{src}: 'bounds_source' must be \"declared\" (bounds from public knowledge) or "
            f"\"inferred\" (read from data by `fedcondense schema infer`), got {bounds_source!r}.")
    return Schema(
        name=name, columns=columns, task=task, subgroups=tuple(subgroups),
        bounds_source=bounds_source, source=src,
    )
