"""MST and AIM (smartnoise-synth) on a schema's table, with a public discretisation.

Both generators work on discrete data. Every column is mapped to integer codes using only the
public schema, so no privacy budget is spent on preprocessing and the domain reveals nothing:

* numeric features — ``BINS`` equal-width bins over the public ``[min, max]`` (integer
  columns: bins of whole integers, one per value when the range has at most ``BINS``);
* survival time — ``BINS`` bins equal-width on the log scale over ``[time_min, time_max]``;
* categorical / binary / class target / event — their levels.

The generator's transformer is fitted on a public table that enumerates every code, so its
domain is the full public one. Sampled codes are decoded to a value drawn uniformly inside the
bin (integer columns rounded). smartnoise-synth draws its noise from OpenDP's secure generator:
the seed fixes the decoding only, so MST/AIM runs are not bit-reproducible.

smartnoise-synth conflicts with the project's pinned environment (it installs opacus 0.14 and
jax), so it usually lives in a separate virtual environment with fedcondense installed too;
:func:`run_in_subprocess` drives that interpreter through this module's command line::

    python -m fedcondense.simulations.evaluation.marginal_baselines --method mst --data train.csv \
        --schema s.json --rows 400 --epsilon 1 --delta 1e-5 --seed 0 --out synthetic.csv
"""

from __future__ import annotations

import argparse
import math
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ...protocol.data.schema import Schema
from ...protocol.data.site_table import normalise_label
from ...protocol.errors import FedcondenseError

BINS = 10
METHODS = ("mst", "aim")


def _edges(schema: Schema, col: str) -> np.ndarray | None:
    """Bin edges of a numeric column or the survival time; ``None`` for a discrete column."""
    task = schema.task
    if schema.is_survival and col == task.time:  # type: ignore[union-attr]
        return np.geomspace(task.time_min, task.time_max, BINS + 1)  # type: ignore[union-attr]
    if col in schema.feature_names and schema.column(col).kind == "numeric":
        c = schema.column(col)
        lo, hi = float(c.min), float(c.max)  # type: ignore[arg-type]
        if c.integer:  # edges on half-integers, so every integer falls inside one bin
            width = math.floor(hi) - math.ceil(lo) + 1
            steps = np.unique(np.round(np.linspace(0, width, min(BINS, width) + 1)))
            return math.ceil(lo) - 0.5 + steps
        return np.linspace(lo, hi, BINS + 1)
    return None


def _levels(schema: Schema, col: str) -> list[str]:
    if col in schema.feature_names:
        c = schema.column(col)
        return list(c.levels) if c.kind == "categorical" else ["0", "1"]
    if schema.is_survival:
        return ["0", "1"]
    return [str(x) for x in schema.task.classes]  # type: ignore[union-attr]


def discretise(frame: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, list[int]]:
    """Integer codes of every column and the public cardinality of each."""
    codes, cards = {}, []
    for col in schema.all_columns:
        edges = _edges(schema, col)
        if edges is not None:
            x = frame[col].to_numpy(dtype=float)
            codes[col] = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
            cards.append(len(edges) - 1)
        else:
            levels = [normalise_label(v) for v in _levels(schema, col)]
            index = {v: i for i, v in enumerate(levels)}
            mapped = frame[col].map(lambda v: index.get(normalise_label(v), -1)).to_numpy()
            if (mapped < 0).any():
                row = int(np.flatnonzero(mapped < 0)[0]) + 2
                raise FedcondenseError(f"row {row}, column {col}: value is not one of the "
                                       f"schema's levels {levels}; fix the table or the schema.")
            codes[col] = mapped
            cards.append(len(levels))
    return pd.DataFrame({c: np.asarray(v, dtype=int) for c, v in codes.items()}), cards


def undiscretise(codes: pd.DataFrame, schema: Schema, rng: np.random.Generator) -> pd.DataFrame:
    """Values in the schema's columns from integer codes (uniform inside numeric bins)."""
    out = {}
    for col in schema.all_columns:
        k = codes[col].to_numpy(dtype=int)
        edges = _edges(schema, col)
        if edges is not None:
            lo, hi = edges[k], edges[k + 1]
            if schema.is_survival and col == schema.task.time:  # type: ignore[union-attr]
                v = np.exp(rng.uniform(np.log(lo), np.log(hi)))
            elif schema.column(col).integer:  # a uniform integer of the bin
                v = rng.integers(np.ceil(lo).astype(int), np.floor(hi).astype(int) + 1).astype(float)
            else:
                v = rng.uniform(lo, hi)
            out[col] = v
        else:
            vals = np.asarray(_levels(schema, col), dtype=object)[k]
            is_flag = (col not in schema.feature_names and schema.is_survival) or (
                col in schema.feature_names and schema.column(col).kind == "binary")
            out[col] = vals.astype(int) if is_flag else vals
    return pd.DataFrame(out)[schema.all_columns]


def _public_transformer(cards: list[int]) -> object:
    """A smartnoise TableTransformer whose domain is every code 0..card-1 (fitted on no data)."""
    from snsynth.transform import LabelTransformer, TableTransformer

    width = max(cards)
    enum = [tuple(i % c for c in cards) for i in range(width)]
    tt = TableTransformer([LabelTransformer(nullable=False) for _ in cards])
    tt.fit(enum)
    return tt


def fit_sample(method: str, frame: pd.DataFrame, schema: Schema, rows: int, epsilon: float,
               delta: float, seed: int) -> pd.DataFrame:
    """Run MST or AIM in this process (smartnoise-synth must be importable)."""
    if method not in METHODS:
        raise FedcondenseError(f"unknown marginal baseline '{method}'; choose from {METHODS}.")
    if math.isinf(epsilon):
        raise FedcondenseError(f"{method} needs a finite ε (it has no non-private mode).")
    from snsynth import Synthesizer

    codes, cards = discretise(frame, schema)
    synth = Synthesizer.create(method, epsilon=float(epsilon), delta=float(delta))
    rows_in = [tuple(int(v) for v in r) for r in codes.itertuples(index=False)]
    synth.fit(rows_in, transformer=_public_transformer(cards), preprocessor_eps=0.0)
    sampled = pd.DataFrame(synth.sample(rows), columns=list(codes.columns))
    return undiscretise(sampled, schema, np.random.default_rng([seed, 0x4D57]))


def run_in_subprocess(python: str, method: str, frame: pd.DataFrame, schema: Schema, rows: int,
                      epsilon: float, delta: float, seed: int, timeout: float = 3600) -> pd.DataFrame:
    """Run :func:`fit_sample` with another interpreter (a venv holding smartnoise-synth)."""
    with tempfile.TemporaryDirectory() as tmp:
        data, sch, out = Path(tmp) / "train.csv", Path(tmp) / "schema.json", Path(tmp) / "syn.csv"
        frame.to_csv(data, index=False)
        schema.save(sch)
        cmd = [python, "-m", "fedcondense.simulations.evaluation.marginal_baselines", "--method", method,
               "--data", str(data), "--schema", str(sch), "--rows", str(rows), "--epsilon",
               str(epsilon), "--delta", str(delta), "--seed", str(seed), "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not out.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise FedcondenseError(f"{method} with {python} failed: {last}")
        return pd.read_csv(out)


def main() -> None:
    ap = argparse.ArgumentParser(description="Run MST or AIM on a table with a public schema.")
    ap.add_argument("--method", choices=METHODS, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--schema", type=Path, required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--epsilon", type=float, required=True)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    schema = Schema.load(a.schema)
    frame = pd.read_csv(a.data, dtype={c: str for c in schema.all_columns
                                       if _edges(schema, c) is None})
    res = fit_sample(a.method, frame, schema, a.rows, a.epsilon, a.delta, a.seed)
    res.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
