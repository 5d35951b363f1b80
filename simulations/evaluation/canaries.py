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
  (:func:`~fedcondense.protocol.condensation.site_update.per_record_differences`, then clipping) and
  estimates the records' weights ``b`` in ``reply = Σ_j b_j · vector_j + noise`` (``b_j`` is 1
  when record j was in the round's Poisson sample): the linear MMSE estimate under the prior
  ``E[b_j] = q`` (the site's records) or ``q/2`` (canaries), with the noise variance estimated
  from the least-squares residuals pooled over the rounds so far — so it believes nothing the
  site claims about its noise. A canary's score is its estimated weight summed over the
  rounds. Without noise the residuals vanish and the estimate is the exact least-squares
  solution: with fewer known records than directions it recovers every Poisson selection, so
  any included canary that was sampled once is found; calibrated Gaussian noise drowns the
  weights. With as many known records as directions or more there are no residuals to
  estimate the noise from, and the decoder falls back to least squares (minimum norm).
  (Keinan, Shenfeld & Ligett 2025 identify interference between canaries as what limits
  one-run audits; decoding all records jointly removes it.)
* :func:`black_box_scores` — anyone holding the release: minus the canary's loss under each
  model family fitted on the released synthetic set (a loss-threshold membership attack).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...protocol.condensation.site_update import (
    Records,
    RoundFits,
    per_record_differences,
    per_record_losses,
)
from ...protocol.condensation.synthetic_set import SyntheticSet
from ...protocol.data.encoding import Encoder
from ...protocol.data.schema import Schema
from ...protocol.families.base import ModelFamily
from ...protocol.privacy.dp_mechanism import clip_rows


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
    """The coordinator's per-round linear MMSE decoder (see the module docstring).

    Parameters
    ----------
    known:
        Every record the adversary models: the site's other records first, then all ``m``
        canaries (included or not).
    m:
        Number of canaries (the last ``m`` rows of ``known``).
    sample_rate:
        The site's Poisson sampling rate ``q`` (the coordinator requested it).
    """

    known: Records
    m: int
    sample_rate: float
    scores: np.ndarray = field(init=False)
    rounds: int = field(default=0, init=False)
    residual_ss: float = field(default=0.0, init=False)
    residual_dof: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.scores = np.zeros(self.m)

    @property
    def noise_variance(self) -> float | None:
        """Pooled residual variance per coordinate so far (``None`` without residual dof)."""
        return self.residual_ss / self.residual_dof if self.residual_dof else None

    def observe(self, fits: RoundFits, reply: np.ndarray) -> np.ndarray:
        """Decode one round's reply; returns the canaries' weights and adds them to the scores."""
        n = len(self.known.X)
        y = np.asarray(reply, dtype=np.float64)
        a = clip_rows(per_record_differences(fits, self.known, np.arange(n)),
                      fits.config.clip_norm).T  # (P, n): one column per known record
        exact, _, rank, _ = np.linalg.lstsq(a, y, rcond=None)
        self.residual_ss += float(np.sum((y - a @ exact) ** 2))
        self.residual_dof += len(y) - int(rank)
        weights = exact
        if self.noise_variance is not None:
            q = self.sample_rate
            prior = np.r_[np.full(n - self.m, q), np.full(self.m, q / 2)]
            gram = a.T @ a + np.diag(self.noise_variance / np.maximum(prior * (1 - prior), 1e-12))
            weights = prior + np.linalg.lstsq(gram, a.T @ (y - a @ prior), rcond=None)[0]
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
