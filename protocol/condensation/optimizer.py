"""Adam on the synthetic set's free coordinates, followed by projection into the public box.

The state (first/second moments and step count) is plain arrays so that it checkpoints
exactly; :meth:`Adam.state_dict` / :meth:`Adam.from_state` round-trip bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Adam:
    """Adam (Kingma & Ba) with bias correction; ``step`` returns the updated point."""

    lr: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    m: np.ndarray | None = None
    v: np.ndarray | None = None
    t: int = 0

    def step(self, z: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.m is None or self.v is None:
            self.m = np.zeros_like(z)
            self.v = np.zeros_like(z)
        self.t += 1
        self.m = self.beta1 * self.m + (1.0 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1.0 - self.beta2) * grad * grad
        m_hat = self.m / (1.0 - self.beta1**self.t)
        v_hat = self.v / (1.0 - self.beta2**self.t)
        return z - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict[str, np.ndarray]:
        hyper = np.array([self.lr, self.beta1, self.beta2, self.eps, float(self.t)])
        out = {"adam_hyper": hyper}
        if self.m is not None and self.v is not None:
            out["adam_m"] = self.m.copy()
            out["adam_v"] = self.v.copy()
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "Adam":
        lr, b1, b2, eps, t = (float(x) for x in state["adam_hyper"])
        opt = cls(lr=lr, beta1=b1, beta2=b2, eps=eps, t=int(t))
        if "adam_m" in state:
            opt.m = np.array(state["adam_m"], dtype=np.float64)
            opt.v = np.array(state["adam_v"], dtype=np.float64)
        return opt
