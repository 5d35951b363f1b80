"""Batched k-nearest-neighbour classifier: B training sets handled by one ``torch.cdist``.

Matches the reference family ``knn``: standardise each training set by its own mean and
population std (std 0 → 1), then scikit-learn ``KNeighborsClassifier(n_neighbors=k)`` with
uniform weights and Euclidean distance, k capped at the set size m. ``predict_proba`` is the
fraction of the k nearest training rows in each class; classes absent from the labels get 0.
Exact distance ties between neighbours may be broken differently from scikit-learn (which
depends on its search algorithm); with continuous features they do not occur in practice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batched_logistic import standardise


@dataclass
class KNNParams:
    """Standardised training sets of a batch.

    Attributes
    ----------
    mu, sd:
        ``(B, 1, d)`` standardisation of each set.
    Z:
        ``(B, m, d)`` standardised training rows.
    onehot:
        ``(m, K)`` one-hot labels.
    k:
        Number of neighbours actually used (capped at m).
    """

    mu: torch.Tensor
    sd: torch.Tensor
    Z: torch.Tensor
    onehot: torch.Tensor
    k: int


def fit(X: torch.Tensor, y: torch.Tensor, n_classes: int, n_neighbors: int = 5) -> KNNParams:
    """Store the standardised sets ``X (B, m, d)`` and labels ``y (m,)`` (float64, X's device)."""
    X = X.to(torch.float64)
    mu, sd = standardise(X)
    y = torch.as_tensor(y, device=X.device).long()
    onehot = torch.nn.functional.one_hot(y, int(n_classes)).to(torch.float64)
    k = max(1, min(int(n_neighbors), X.shape[1]))
    return KNNParams(mu=mu, sd=sd, Z=(X - mu) / sd, onehot=onehot, k=k)


def predict_proba(params: KNNParams, X_real: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Class probabilities ``(B, n, K)`` of real records ``X_real (n, d)``."""
    x = torch.as_tensor(X_real, device=params.Z.device).to(torch.float64)
    outs = []
    for start in range(0, x.shape[0], chunk):
        q = (x[None, start:start + chunk] - params.mu) / params.sd  # (B, c, d)
        dist = torch.cdist(q, params.Z, compute_mode="donot_use_mm_for_euclid_dist")
        idx = dist.topk(params.k, dim=2, largest=False, sorted=False).indices  # (B, c, k)
        outs.append(params.onehot[idx].mean(dim=2))
    return torch.cat(outs, dim=1)
