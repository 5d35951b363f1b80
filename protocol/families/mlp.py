"""``mlp``: a small torch multilayer perceptron, trained on all perturbed sets at once.

Standardise (on the training set), one hidden layer of ``hidden`` ReLU units, softmax output,
full-batch Adam (``lr``, ``weight_decay`` as L2 added to the gradient, as in
``torch.optim.Adam``) for ``steps`` steps from initial weights drawn from a private generator
seeded with ``random_state`` (every set starts from the same weights; the global torch RNG is
untouched). The B networks of a batch are independent; they are trained together with
batched matrix products and hand-written gradients (no autograd graph, no optimizer object:
~3× less per-step overhead on tiny sets), so a batch costs about as much as one network.
Runs on the family's ``device`` (``"auto"``: CUDA when present); on CPU the fit runs with one
intra-op thread. There is no separate library reference: ``backend="reference"`` and
``"batched"`` run this same code (the conformance suite checks they agree exactly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from .base import (
    FitTargets,
    FittedBatch,
    ModelFamily,
    class_frequencies,
)

if TYPE_CHECKING:  # torch is imported where it is used: listing the families stays light
    import torch

_BETAS = (0.9, 0.999)
_EPS = 1e-8


@contextmanager
def torch_single_thread(device: torch.device) -> Iterator[None]:
    """One intra-op thread for tiny CPU tensors (thread hand-off dominates), then restore."""
    import torch

    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def forward(xs: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
            b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-activations ``(B, m, h)`` and logits ``(B, m, K)`` of standardised rows."""
    import torch

    pre = torch.baddbmm(b1, xs, w1)
    return pre, torch.baddbmm(b2, pre.clamp_min(0.0), w2)


def train(xs: torch.Tensor, onehot: torch.Tensor, params: list[torch.Tensor], steps: int,
          lr: float, weight_decay: float) -> None:
    """Full-batch Adam on the mean cross-entropy of each set, updating ``params`` in place.

    Parameters
    ----------
    xs:
        ``(B, m, d)`` standardised rows.
    onehot:
        ``(B, m, K)`` one-hot labels.
    params:
        ``[w1 (B, d, h), b1 (B, 1, h), w2 (B, h, K), b2 (B, 1, K)]``.
    """
    import torch

    w1, b1, w2, b2 = params
    m = xs.shape[1]
    xt = xs.transpose(1, 2)
    mom = [torch.zeros_like(p) for p in params]
    sq = [torch.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        pre, logits = forward(xs, w1, b1, w2, b2)
        hidden = pre.clamp_min(0.0)
        g_logits = (torch.softmax(logits, dim=-1) - onehot) / m
        g_hidden = (g_logits @ w2.transpose(1, 2)) * (pre > 0)
        grads = (xt @ g_hidden, g_hidden.sum(1, keepdim=True),
                 hidden.transpose(1, 2) @ g_logits, g_logits.sum(1, keepdim=True))
        bc1, bc2 = 1.0 - _BETAS[0] ** step, 1.0 - _BETAS[1] ** step
        for p, g, m1, m2 in zip(params, grads, mom, sq):
            g.add_(p, alpha=weight_decay)
            m1.mul_(_BETAS[0]).add_(g, alpha=1.0 - _BETAS[0])
            m2.mul_(_BETAS[1]).addcmul_(g, g, value=1.0 - _BETAS[1])
            p.addcdiv_(m1, (m2 / bc2).sqrt_().add_(_EPS), value=-lr / bc1)


class MLPFamily(ModelFamily):
    """Standardise, then a 1-hidden-layer ReLU network (torch), Adam, fixed seed.

    A set with non-finite values, or whose trained weights are not finite, falls back to the
    smoothed class frequencies of the synthetic labels.
    """

    name = "mlp"
    task = "classification"
    defaults = {"hidden": 32, "steps": 200, "lr": 0.01, "weight_decay": 1e-3, "random_state": 0}
    backends = ("reference", "batched")
    torch_backends = ("reference", "batched")

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        import torch

        assert targets.labels is not None
        p = self.params
        dev = torch.device(self.device)
        labels = np.asarray(targets.labels, dtype=np.int64)
        k, h = int(targets.n_classes), int(p["hidden"])
        X = np.asarray(X, dtype=np.float64)
        ok = np.isfinite(X).reshape(X.shape[0], -1).all(axis=1)
        with torch_single_thread(dev), torch.no_grad():
            x = torch.as_tensor(np.where(ok[:, None, None], X, 0.0), dtype=torch.float32, device=dev)
            b, m, d = x.shape
            mu = x.mean(dim=1, keepdim=True)
            sd = x.std(dim=1, unbiased=False, keepdim=True)
            sd = torch.where(sd > 1e-6, sd, torch.ones_like(sd))
            gen = torch.Generator(device="cpu").manual_seed(int(p["random_state"]))
            w1 = (torch.rand(1, d, h, generator=gen) * 2 - 1) / d**0.5
            w2 = (torch.rand(1, h, k, generator=gen) * 2 - 1) / h**0.5
            params = [w1.repeat(b, 1, 1).to(dev), torch.zeros(b, 1, h, device=dev),
                      w2.repeat(b, 1, 1).to(dev), torch.zeros(b, 1, k, device=dev)]
            onehot = torch.nn.functional.one_hot(torch.as_tensor(labels, device=dev), k)
            train((x - mu) / sd, onehot.to(x.dtype).expand(b, m, k), params, int(p["steps"]),
                  float(p["lr"]), float(p["weight_decay"]))
            finite = torch.stack([t.reshape(b, -1).isfinite().all(dim=1) for t in params]).all(0)
        ok &= finite.cpu().numpy()
        freq = class_frequencies(labels, k)
        return FittedBatch([i if good else None for i, good in enumerate(ok)],
                           [None if good else freq for good in ok],
                           {"state": [mu, sd, *params], "n_classes": k})

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        import torch

        mu, sd, w1, b1, w2, b2 = fitted.extra["state"]
        with torch_single_thread(mu.device), torch.no_grad():
            x = torch.as_tensor(np.asarray(X_real), dtype=torch.float32, device=mu.device)
            _, logits = forward((x[None] - mu) / sd, w1, b1, w2, b2)
            out = torch.softmax(logits.double(), dim=-1).cpu().numpy()
        for b, model in enumerate(fitted.models):
            if model is None:
                out[b] = fitted.fallback[b]
        return out
