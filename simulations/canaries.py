"""Canary records for the one-run privacy audit, and how an adversary scores them.

Canaries (:func:`make_canaries`) are records drawn uniformly from the schema's *public* box,
with random class labels (or, for survival, log-uniform times and random event flags). They lie
far from typical patients, so the models fitted on the synthetic set mispredict them and
their per-record loss differences fill the clipping norm; each one sits in its own leaves
of the decision trees, so its P-vector looks unlike any other record's.

Two adversaries score them (higher score = "this canary was in the site's table"):

* :class:`WhiteBoxDecoder` — the coordinator. It knows the round's public fits (directions
  and synthetic set are its own), every canary and — strongest case, as DP must hold whatever
  the rest of the table is — the site's other records. In every round it computes each known
  record's clipped P-vector exactly as the site does
  (:func:`~fedcondense.protocol.site_update.per_record_differences`, then clipping) and solves
  the least-squares problem ``reply ≈ Σ_j b_j · vector_j`` for the records' weights ``b``;
  a canary's score is its weight summed over the rounds. Without noise and with no more known
  records than directions, ``b`` is the exact 0/1 Poisson selection of every record, so any
  included canary that was sampled once is found; calibrated Gaussian noise drowns the weights.
  (Keinan, Shenfeld & Ligett 2025 identify interference between canaries as what limits
  one-run audits; decoding all records jointly removes it.)
* :func:`black_box_scores` — anyone holding the release: minus the canary's loss under each
  model family fitted on the released synthetic set (a loss-threshold membership attack).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fedcondense.protocol.dp_mechanism import clip_rows
from fedcondense.protocol.encoding import Encoder
from fedcondense.protocol.families.base import ModelFamily
from fedcondense.protocol.schema import Schema
from fedcondense.protocol.site_update import (
    Records, RoundFits, per_record_differences, per_record_losses,
)
from fedcondense.protocol.synthetic_set import SyntheticSet


def make_canaries(schema: Schema, m: int, rng: np.random.Generator) -> pd.DataFrame:
    """``m`` canary rows in the schema's columns, uniform over the public bounds.

    Numeric values are uniform in ``[min, max]`` (integer columns rounded), binary and
    categorical values uniform over their levels; classification labels uniform over the
    classes; survival times log-uniform in ``[time_min, time_max]`` with a fair-coin event.
    """
    if m < 1:
        raise ValueError("at least one canary is needed")
    enc = Encoder(schema)
    frame = enc.decode_features(rng.uniform(enc.lower, enc.upper, size=(m, enc.dim)))
    task = schema.task
    if schema.is_survival:
        lo, hi = np.log(task.time_min), np.log(task.time_max)  # type: ignore[union-attr]
        frame[task.time] = np.exp(rng.uniform(lo, hi, size=m))  # type: ignore[union-attr]
        frame[task.event] = rng.integers(0, 2, size=m)  # type: ignore[union-attr]
    else:
        classes = np.asarray(task.classes, dtype=object)  # type: ignore[union-attr]
        frame[task.target] = classes[rng.integers(0, len(classes), size=m)]  # type: ignore[union-attr]
    return frame[schema.all_columns]


@dataclass
class WhiteBoxDecoder:
    """The coordinator's per-round least-squares decoder (see the module docstring).

    Parameters
    ----------
    known:
        Every record the adversary models: the site's other records first, then all ``m``
        canaries (included or not).
    m:
        Number of canaries (the last ``m`` rows of ``known``).
    """

    known: Records
    m: int
    scores: np.ndarray = field(init=False)
    rounds: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.scores = np.zeros(self.m)

    def observe(self, fits: RoundFits, reply: np.ndarray) -> np.ndarray:
        """Decode one round's reply; returns the canaries' weights and adds them to the scores."""
        n = len(self.known.X)
        vectors = clip_rows(per_record_differences(fits, self.known, np.arange(n)),
                            fits.config.clip_norm)
        weights, *_ = np.linalg.lstsq(vectors.T, np.asarray(reply, dtype=np.float64), rcond=None)
        canary_weights = weights[n - self.m:]
        self.scores += canary_weights
        self.rounds += 1
        return canary_weights


def black_box_scores(synthetic: SyntheticSet, families: dict[str, ModelFamily],
                     canaries: Records, floor: float = 1e-4) -> np.ndarray:
    """Minus each canary's summed loss under the families fitted on the released set."""
    z = synthetic.project(synthetic.Z)[None]
    x, times = synthetic.split(z)
    idx = np.arange(len(canaries.X))
    total = np.zeros(len(idx))
    for fam in families.values():
        fitted = fam.fit_batch(x, synthetic.targets(), times)
        total -= per_record_losses(fam, fitted, synthetic, canaries, idx, floor)[0]
    return total
