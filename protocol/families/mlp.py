"""``mlp``: a small torch multilayer perceptron, trained on all perturbed sets at once.

Standardise (on the training set), one hidden layer of ``hidden`` ReLU units, softmax output,
full-batch Adam (``lr``, ``weight_decay``) for ``steps`` steps from a fixed seed. The B
networks of a batch are independent; they are trained together with batched matrix products,
so a batch costs about as much as one network. Runs on CUDA when ``device="cuda"``.
"""

from __future__ import annotations

import numpy as np
import torch

from fedcondense.protocol.families import register
from fedcondense.protocol.families.base import FitTargets, FittedBatch, ModelFamily


@register
class MLPFamily(ModelFamily):
    """Standardise, then a 1-hidden-layer ReLU network (torch), Adam, fixed seed."""

    name = "mlp"
    task = "classification"
    defaults = {"hidden": 32, "steps": 200, "lr": 0.01, "weight_decay": 1e-3, "random_state": 0,
                "device": "cpu"}
    backends = ("reference", "batched")

    def fit_batch(self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None) -> FittedBatch:
        p = self.params
        dev = torch.device(p["device"])
        x = torch.as_tensor(X, dtype=torch.float32, device=dev)  # (B, m, d)
        mu = x.mean(dim=1, keepdim=True)
        sd = x.std(dim=1, unbiased=False, keepdim=True)
        sd = torch.where(sd > 1e-6, sd, torch.ones_like(sd))
        xs = (x - mu) / sd
        y = torch.as_tensor(np.asarray(targets.labels), dtype=torch.long, device=dev)
        b, m, d = x.shape
        k, h = targets.n_classes, int(p["hidden"])
        gen = torch.Generator(device="cpu").manual_seed(int(p["random_state"]))
        init = lambda *s, fan: (torch.rand(*s, generator=gen) * 2 - 1) / fan**0.5  # noqa: E731
        w1 = init(1, d, h, fan=d).repeat(b, 1, 1).to(dev).requires_grad_()
        b1 = torch.zeros(b, 1, h, device=dev, requires_grad=True)
        w2 = init(1, h, k, fan=h).repeat(b, 1, 1).to(dev).requires_grad_()
        b2 = torch.zeros(b, 1, k, device=dev, requires_grad=True)
        params = [w1, b1, w2, b2]
        opt = torch.optim.Adam(params, lr=p["lr"], weight_decay=p["weight_decay"])
        target = y.expand(b, m)
        with torch.enable_grad():
            for _ in range(int(p["steps"])):
                opt.zero_grad()
                logits = torch.relu(xs @ w1 + b1) @ w2 + b2
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, k), target.reshape(-1),
                                                         reduction="sum") / m
                loss.backward()
                opt.step()
        state = [t.detach() for t in (mu, sd, w1, b1, w2, b2)]
        return FittedBatch(list(range(b)), [None] * b, {"state": state})

    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        mu, sd, w1, b1, w2, b2 = fitted.extra["state"]
        x = torch.as_tensor(X_real, dtype=torch.float32, device=mu.device)[None]
        with torch.no_grad():
            logits = torch.relu(((x - mu) / sd) @ w1 + b1) @ w2 + b2
            return torch.softmax(logits, dim=-1).double().cpu().numpy()
