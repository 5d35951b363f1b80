"""Benchmark: reference (library, one fit per set) vs torch batched backend of the families.

One condensation round fits each family on B = 2·P perturbed copies of a small synthetic set
(m rows, d encoded features) and predicts on n real rows. For ``logistic_regression``, ``knn``
and ``cox_ph`` this times ``fit_batch`` + ``predict_batch`` of both backends on the same inputs
and prints fits per second, the speed-up and the largest absolute difference between the two
backends' predictions (bounded by the libraries' own convergence tolerance).

Run::

    .venv/bin/python -m fedcondense.simulations.bench_backends [--B 128] [--ms 20,40] \
        [--n 500] [--d 12] [--classes 2] [--families logistic_regression,cox_ph] \
        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table as RichTable  # noqa: E402

from fedcondense.protocol.families import batched_backend, create_family  # noqa: E402
from fedcondense.protocol.families.base import FitTargets  # noqa: E402

HORIZONS = (5.0, 10.0, 20.0)
BATCHED: dict[str, tuple[Callable[..., Any], Callable[..., np.ndarray]]] = {
    "logistic_regression": (lambda X, tg, t, fam, dev: batched_backend.fit_logistic(
        X, tg, fam.params["C"], device=dev), batched_backend.predict_logistic),
    "knn": (lambda X, tg, t, fam, dev: batched_backend.fit_knn(
        X, tg, fam.params["n_neighbors"], device=dev), batched_backend.predict_knn),
    "cox_ph": (lambda X, tg, t, fam, dev: batched_backend.fit_cox(
        X, tg, t, fam.params["penalizer"], device=dev), batched_backend.predict_cox),
}


def make_problem(name: str, B: int, m: int, n: int, d: int, k: int = 2, seed: int = 0):
    """Perturbed copies of one synthetic set, its targets, (times) and real rows."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(m, d))
    X = base[None] + 0.1 * rng.normal(size=(B, m, d))
    X_real = rng.normal(size=(n, d))
    if name == "cox_ph":
        t0 = rng.exponential(10.0 * np.exp(-base[:, 0]))
        time_ = np.clip(t0[None] * np.exp(0.1 * rng.normal(size=(B, m))), 0.1, None)
        event = (rng.random(m) < 0.7).astype(int)
        event[0] = 1
        return X, FitTargets(event=event, horizons=HORIZONS), time_, X_real
    y = np.arange(m) % k
    X[:, :, 0] += y[None]
    return X, FitTargets(labels=y, n_classes=k), None, X_real


def _timed(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench(name: str, B: int, m: int, n: int, d: int, device: str, repeats: int,
          k: int = 2) -> dict[str, Any]:
    X, targets, time_, X_real = make_problem(name, B, m, n, d, k)
    ref = create_family(name, backend="reference")
    ref.predict_batch(ref.fit_batch(X[:2], targets, None if time_ is None else time_[:2]), X_real)
    t_ref, p_ref = _timed(lambda: ref.predict_batch(ref.fit_batch(X, targets, time_), X_real), 1)
    fit, predict = BATCHED[name]

    def batched() -> np.ndarray:
        out = predict(fit(X, targets, time_, ref, device), X_real)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    batched()  # warm-up (kernels, lazy imports)
    t_bat, p_bat = _timed(batched, repeats)
    return {"family": name, "m": m, "ref": B / t_ref, "batched": B / t_bat,
            "speedup": t_ref / t_bat, "maxdiff": float(np.abs(p_ref - p_bat).max())}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--B", type=int, default=128, help="sets per batch (2·P)")
    ap.add_argument("--ms", default="20,40", help="synthetic set sizes")
    ap.add_argument("--n", type=int, default=500, help="real rows predicted")
    ap.add_argument("--d", type=int, default=12, help="encoded features")
    ap.add_argument("--classes", type=int, default=2, help="classes of the classifiers")
    ap.add_argument("--families", default="logistic_regression,knn,cox_ph")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    console = Console(width=max(Console().width, 100))
    table = RichTable(title=f"fits/s, B={args.B}, n={args.n}, d={args.d}, device={args.device}, "
                            f"classes={args.classes}, torch threads={torch.get_num_threads()}")
    for col in ("family", "m", "reference fits/s", "batched fits/s", "speed-up", "max |Δp|"):
        table.add_column(col, justify="left" if col == "family" else "right", no_wrap=True)
    rows = []
    for name in args.families.split(","):
        for m in (int(v) for v in args.ms.split(",")):
            r = bench(name, args.B, m, args.n, args.d, args.device, args.repeats, args.classes)
            rows.append(r)
            table.add_row(name, str(m), f"{r['ref']:.0f}", f"{r['batched']:.0f}",
                          f"{r['speedup']:.1f}×", f"{r['maxdiff']:.1e}")
    console.print(table)
    return rows


if __name__ == "__main__":
    main()
