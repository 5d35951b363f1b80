"""The encoded feature space shared by real records and the synthetic set.

Every party encodes rows identically, using only the public schema:

* numeric column → one coordinate, ``2 (x - min) / (max - min) - 1`` ∈ [-1, 1];
* binary column → one coordinate in [0, 1] (0/1 for real rows, relaxed for synthetic rows);
* categorical column with L levels → L coordinates in [0, 1] (one-hot for real rows; a
  continuous relaxation for synthetic rows, decoded by argmax);
* survival time → ``2 (log t - log tmin) / (log tmax - log tmin) - 1`` ∈ [-1, 1].

Model families are fitted and evaluated in this space, so a synthetic set and a real table
are comparable coordinate by coordinate. :meth:`Encoder.decode_features` turns encoded rows
back into a table in the schema's columns (categories by argmax, integer columns rounded,
everything inside the public bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .schema import Schema, SurvivalTask


@dataclass(frozen=True)
class Block:
    """Where one schema column lives in the encoded vector."""

    column: str
    kind: str
    start: int
    stop: int


class Encoder:
    """Encode/decode between schema columns and the numeric model space."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        blocks: list[Block] = []
        lower: list[float] = []
        upper: list[float] = []
        pos = 0
        for col in schema.columns:
            width = len(col.levels) if col.kind == "categorical" else 1
            blocks.append(Block(col.name, col.kind, pos, pos + width))
            lo = -1.0 if col.kind == "numeric" else 0.0
            lower += [lo] * width
            upper += [1.0] * width
            pos += width
        self.blocks: tuple[Block, ...] = tuple(blocks)
        self.dim = pos
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)

    # ------------------------------------------------------------------ names
    def feature_labels(self) -> list[str]:
        """Human-readable name of every encoded coordinate (``col`` or ``col=level``)."""
        out: list[str] = []
        for b in self.blocks:
            col = self.schema.column(b.column)
            if b.kind == "categorical":
                out += [f"{b.column}={lv}" for lv in col.levels]
            else:
                out.append(b.column)
        return out

    # ------------------------------------------------------------------ features
    def encode_features(self, df: pd.DataFrame) -> np.ndarray:
        """Encode validated feature columns (see :mod:`site_table`) into an (n, dim) array."""
        n = len(df)
        out = np.zeros((n, self.dim), dtype=np.float64)
        for b in self.blocks:
            col = self.schema.column(b.column)
            values = df[b.column]
            if b.kind == "numeric":
                assert col.min is not None and col.max is not None  # schema: numeric has bounds
                x = values.to_numpy(dtype=np.float64)
                out[:, b.start] = 2.0 * (x - col.min) / (col.max - col.min) - 1.0
            elif b.kind == "binary":
                out[:, b.start] = values.to_numpy(dtype=np.float64)
            else:
                idx = pd.Categorical(values.astype(str), categories=list(col.levels)).codes
                if (idx < 0).any():
                    raise ValueError(f"unknown level in column {b.column}")
                out[np.arange(n), b.start + idx] = 1.0
        return out

    def project(self, z: np.ndarray) -> np.ndarray:
        """Clip encoded rows into the public box (last axis = encoded coordinates)."""
        return np.clip(z, self.lower, self.upper)

    def decode_features(self, z: np.ndarray) -> pd.DataFrame:
        """Decode encoded rows into schema columns: argmax categories, rounded integers."""
        z = self.project(np.asarray(z, dtype=np.float64))
        data: dict[str, object] = {}
        for b in self.blocks:
            col = self.schema.column(b.column)
            if b.kind == "numeric":
                assert col.min is not None and col.max is not None
                x = (z[:, b.start] + 1.0) / 2.0 * (col.max - col.min) + col.min
                x = np.clip(x, col.min, col.max)
                if col.integer:
                    x = np.clip(np.round(x), np.ceil(col.min), np.floor(col.max)).astype(np.int64)
                data[b.column] = x
            elif b.kind == "binary":
                data[b.column] = (z[:, b.start] >= 0.5).astype(np.int64)
            else:
                idx = np.argmax(z[:, b.start : b.stop], axis=1)
                data[b.column] = np.asarray(col.levels, dtype=object)[idx]
        return pd.DataFrame(data, columns=self.schema.feature_names)

    def harden(self, z: np.ndarray) -> np.ndarray:
        """Encode(decode(z)): the encoded form of the released (decoded) rows."""
        return self.encode_features(self.decode_features(z))

    # ------------------------------------------------------------------ survival time
    def _log_bounds(self) -> tuple[float, float]:
        task = self.schema.task
        assert isinstance(task, SurvivalTask)
        return float(np.log(task.time_min)), float(np.log(task.time_max))

    def encode_time(self, t: np.ndarray) -> np.ndarray:
        lo, hi = self._log_bounds()
        return 2.0 * (np.log(np.asarray(t, dtype=np.float64)) - lo) / (hi - lo) - 1.0

    def decode_time(self, u: np.ndarray) -> np.ndarray:
        lo, hi = self._log_bounds()
        u = np.clip(np.asarray(u, dtype=np.float64), -1.0, 1.0)
        return np.exp((u + 1.0) / 2.0 * (hi - lo) + lo)
