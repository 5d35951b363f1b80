"""The synthetic set: the small table the consortium learns and releases.

Layout
------
``Z`` is an ``(m, D)`` float64 array of *free* coordinates, the only thing the optimiser moves:

* columns ``0 .. d-1``: the encoded features (:mod:`fedcondense.protocol.data.encoding`);
* survival only, column ``d``: the encoded log-time in [-1, 1].

Targets are fixed and never perturbed: ``labels`` (classification; balanced, ``rows_per_class``
rows of each class in class order) or ``event`` (survival; 0/1 per row).

The set is public by construction (it only ever depends on real data through noised,
accounted quantities), so it travels in the clear to every site each round as the arrays of
:meth:`SyntheticSet.to_arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.encoding import Encoder
from ..data.schema import ClassificationTask, Schema, SurvivalTask
from ..errors import FedcondenseError
from ..families.base import FitTargets

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


@dataclass
class SyntheticSet:
    """A synthetic set bound to a schema (mutable ``Z``; targets fixed)."""

    schema: Schema
    Z: np.ndarray
    labels: np.ndarray | None = None
    event: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.encoder = Encoder(self.schema)
        self.Z = np.asarray(self.Z, dtype=np.float64)
        d = self.encoder.dim + (1 if self.schema.is_survival else 0)
        if self.Z.ndim != 2 or self.Z.shape[1] != d:
            raise ValueError(f"synthetic set must have shape (m, {d}), got {self.Z.shape}")
        m = self.Z.shape[0]
        if self.schema.is_survival:
            if self.event is None or np.asarray(self.event).shape != (m,):
                raise ValueError("a survival synthetic set needs an event indicator per row")
            self.event = np.asarray(self.event, dtype=np.int64)
        else:
            if self.labels is None or np.asarray(self.labels).shape != (m,):
                raise ValueError("a classification synthetic set needs a label per row")
            self.labels = np.asarray(self.labels, dtype=np.int64)

    # ------------------------------------------------------------------ geometry
    @property
    def n_rows(self) -> int:
        return int(self.Z.shape[0])

    @property
    def feature_dim(self) -> int:
        return self.encoder.dim

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of every free coordinate, shape ``(D,)``."""
        extra = [-1.0] if self.schema.is_survival else []
        return np.concatenate([self.encoder.lower, extra])

    @property
    def upper(self) -> np.ndarray:
        extra = [1.0] if self.schema.is_survival else []
        return np.concatenate([self.encoder.upper, extra])

    def project(self, z: np.ndarray) -> np.ndarray:
        """Clip free coordinates (last two axes ``(m, D)``) into the public box."""
        return np.clip(z, self.lower, self.upper)

    def copy(self) -> "SyntheticSet":
        return SyntheticSet(
            self.schema,
            self.Z.copy(),
            None if self.labels is None else self.labels.copy(),
            None if self.event is None else self.event.copy(),
        )

    # ------------------------------------------------------------------ model inputs
    def targets(self) -> FitTargets:
        task = self.schema.task
        if isinstance(task, SurvivalTask):
            return FitTargets(event=self.event, horizons=task.horizons)
        assert isinstance(task, ClassificationTask)
        return FitTargets(labels=self.labels, n_classes=len(task.classes))

    def split(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Features ``(..., m, d)`` and survival times ``(..., m)`` (None for classification)
        of free-coordinate arrays ``(..., m, D)``; times are decoded without clipping so that
        perturbations just outside the box still move the fit smoothly."""
        d = self.encoder.dim
        if not self.schema.is_survival:
            return z[..., :d], None
        task = self.schema.task
        assert isinstance(task, SurvivalTask)
        lo, hi = np.log(task.time_min), np.log(task.time_max)
        times = np.exp((z[..., d] + 1.0) / 2.0 * (hi - lo) + lo)
        return z[..., :d], times

    # ------------------------------------------------------------------ release
    def decode(self) -> pd.DataFrame:
        """The release table in the schema's columns (decoded, inside the public bounds)."""
        z = self.project(self.Z)
        frame = self.encoder.decode_features(z[:, : self.encoder.dim])
        task = self.schema.task
        if isinstance(task, ClassificationTask):
            frame[task.target] = np.asarray(task.classes, dtype=object)[self.labels]
        else:
            t = self.encoder.decode_time(z[:, self.encoder.dim])
            frame[task.time] = np.clip(t, task.time_min, task.time_max)
            frame[task.event] = self.event
        return frame[self.schema.all_columns]

    # ------------------------------------------------------------------ codec
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for messages and checkpoints (``Z`` and the fixed targets)."""
        targets = self.event if self.schema.is_survival else self.labels
        return {"Z": self.Z.copy(), "targets": np.asarray(targets, dtype=np.int64).copy()}

    @classmethod
    def from_arrays(cls, schema: Schema, arrays: dict[str, np.ndarray]) -> "SyntheticSet":
        z = np.asarray(arrays["Z"], dtype=np.float64)
        t = np.asarray(arrays["targets"], dtype=np.int64)
        if schema.is_survival:
            return cls(schema, z, event=t)
        return cls(schema, z, labels=t)


def free_dim(schema: Schema) -> int:
    """Number of free coordinates D per synthetic row: encoded features [+ log-time]."""
    return Encoder(schema).dim + (1 if schema.is_survival else 0)


def balanced_labels(n_classes: int, rows_per_class: int) -> np.ndarray:
    """``rows_per_class`` rows of each class, in class order."""
    return np.repeat(np.arange(n_classes, dtype=np.int64), rows_per_class)
