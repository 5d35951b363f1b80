"""Shared base of every model family.

A *model family* is a clinical model class (logistic regression, Cox PH, ...) with fixed
hyper-parameters. The condensation loop fits it on many perturbed copies of the synthetic set
at once and predicts on real records, so the API is batched:

* :meth:`ModelFamily.fit_batch` takes ``X`` of shape ``(B, m, d)`` — B perturbed synthetic
  sets of m rows in the encoded space (see :mod:`fedcondense.protocol.data.encoding`) — plus the
  fixed targets of the synthetic rows (and, for survival, the perturbed times ``(B, m)``) and
  returns an opaque :class:`FittedBatch`.
* :meth:`ModelFamily.predict_batch` takes that batch and real records ``(n, d)`` and returns
  ``(B, n, K)`` class probabilities (classification) or ``(B, n, H)`` survival probabilities
  at the schema's public horizons (survival).

Fitting never touches private data, so every site computes identical fits from the same
synthetic set and round seed; only prediction sees real records. Fitted batches are never
serialised or sent between parties.

A degenerate fit (e.g. Cox non-convergence, a perturbed set the estimator rejects) must not
crash a round: :meth:`ModelFamily.fit_batch` catches the estimator's error for that set and
falls back to a data-free prediction derived from the synthetic targets (class frequencies /
Kaplan–Meier of the synthetic rows), which keeps every per-record loss defined and bounded.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

TaskType = Literal["classification", "survival"]


@dataclass(frozen=True)
class FitTargets:
    """Targets attached to the synthetic rows; they are fixed, never perturbed.

    Attributes
    ----------
    labels:
        ``(m,)`` integer class indices in ``[0, n_classes)`` (classification).
    n_classes:
        Number of classes of the schema (classification).
    event:
        ``(m,)`` event indicators in {0, 1} (survival).
    horizons:
        Public horizons at which survival probabilities are predicted (survival).
    """

    labels: np.ndarray | None = None
    n_classes: int = 0
    event: np.ndarray | None = None
    horizons: tuple[float, ...] = ()


@dataclass
class FittedBatch:
    """Opaque result of :meth:`ModelFamily.fit_batch`; only its own family reads it.

    ``models[b]`` is the fitted estimator of set ``b`` or ``None`` where the fit was
    degenerate, in which case ``fallback[b]`` holds the data-free prediction row
    (``(K,)`` class probabilities or ``(H,)`` survival probabilities).
    """

    models: list[Any]
    fallback: list[np.ndarray | None]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.models)

    @property
    def n_degenerate(self) -> int:
        return sum(m is None for m in self.models)


class ModelFamily(ABC):
    """Base class of the model families; subclasses set ``name``, ``task`` and the defaults.

    Parameters
    ----------
    backend:
        ``"reference"`` (the library estimator, one fit per set) or ``"batched"`` (one torch
        computation over all sets) where the family has one.
    device:
        Where torch computations run: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``
        or ``"cuda"`` / ``"cuda:N"``. Only a backend that runs on torch (:attr:`uses_torch`)
        can use CUDA; the library backends refuse anything but ``"auto"``/``"cpu"``.
        Resolved lazily (:attr:`device`), so library families never import torch.
    **params:
        Hyper-parameters overriding :attr:`defaults`.
    """

    name: ClassVar[str]
    task: ClassVar[TaskType]
    defaults: ClassVar[dict[str, Any]] = {}
    backends: ClassVar[tuple[str, ...]] = ("reference",)
    torch_backends: ClassVar[tuple[str, ...]] = ("batched",)  # backends that compute with torch

    def __init__(self, backend: str = "reference", device: str = "auto", **params: Any) -> None:
        if backend not in self.backends:
            raise ValueError(
                f"model family '{self.name}' has no '{backend}' backend; use one of {self.backends}"
            )
        device, on_torch = str(device), backend in self.torch_backends
        if device not in ("auto", "cpu") and not (on_torch and device.split(":")[0] == "cuda"):
            options = ("'auto', 'cpu' or 'cuda'" if on_torch else
                       f"'auto' or 'cpu' (its {backend} backend runs on the CPU only)")
            raise ValueError(f"model family '{self.name}': device '{device}' is not possible; "
                             f"use {options}")
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"model family '{self.name}' has no parameter '{unknown[0]}'; "
                f"known: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        self.backend = backend
        self.device_request = device
        self._device: str | None = resolve_device(device) if device != "auto" else None
        self.params: dict[str, Any] = {**self.defaults, **params}

    @property
    def uses_torch(self) -> bool:
        """Whether this family's backend computes with torch (and can use CUDA)."""
        return self.backend in self.torch_backends

    @property
    def device(self) -> str:
        """The resolved torch device: ``"cpu"`` or ``"cuda[:N]"`` (see :func:`resolve_device`)."""
        if self._device is None:
            self._device = resolve_device(self.device_request) if self.uses_torch else "cpu"
        return self._device

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ batched API
    @abstractmethod
    def fit_batch(
        self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None
    ) -> FittedBatch:
        """Fit one model per synthetic set.

        Parameters
        ----------
        X:
            ``(B, m, d)`` encoded synthetic features.
        targets:
            Fixed targets of the m synthetic rows.
        time:
            ``(B, m)`` positive survival times in the schema's units (survival only).
        """

    @abstractmethod
    def predict_batch(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        """Predict on real records ``(n, d)``: ``(B, n, K)`` probabilities or ``(B, n, H)``
        survival probabilities at ``targets.horizons``; every value finite and in [0, 1]."""

    # ------------------------------------------------------------------ single-set helpers
    def fit_one(
        self, X: np.ndarray, targets: FitTargets, time: np.ndarray | None = None
    ) -> FittedBatch:
        """Fit on a single synthetic (or real) table ``(m, d)``; returns a batch of size 1."""
        return self.fit_batch(X[None], targets, None if time is None else np.asarray(time)[None])

    def predict_one(self, fitted: FittedBatch, X_real: np.ndarray) -> np.ndarray:
        """Predictions of a size-1 batch: ``(n, K)`` or ``(n, H)``."""
        return self.predict_batch(fitted, X_real)[0]


# ---------------------------------------------------------------------- devices
def resolve_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``; explicit names checked.

    Raises
    ------
    ValueError
        ``"cuda"`` was asked for but torch has no usable CUDA device.
    """
    if device == "cpu" or (device == "auto" and _no_cuda_driver()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.split(":")[0] == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' asked for, but torch sees no CUDA device "
                             f"(torch {torch.__version__}); use device='cpu' or 'auto'")
        return device
    raise ValueError(f"unknown device '{device}'; use 'auto', 'cpu' or 'cuda'")


def _no_cuda_driver() -> bool:
    """True where CUDA cannot be present, decided without importing torch (~2 s): macOS, or
    Linux without the NVIDIA kernel driver (no ``/proc/driver/nvidia``, no ``/dev/nvidia0``).
    Anywhere else (or once torch is imported) torch is asked."""
    if "torch" in sys.modules:
        return False
    if sys.platform == "darwin":
        return True
    return sys.platform.startswith("linux") and not (
        os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0"))


# ---------------------------------------------------------------------- fallbacks
def class_frequencies(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class frequencies of the synthetic labels (data-free fallback prediction)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(float)
    return (counts + 1.0) / (counts.sum() + n_classes)


def kaplan_meier_at(time: np.ndarray, event: np.ndarray, horizons: tuple[float, ...]) -> np.ndarray:
    """Kaplan–Meier survival of the given rows at each horizon (data-free fallback)."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float)
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    at_risk = len(t) - np.arange(len(t))
    factors = np.where(e > 0, 1.0 - 1.0 / np.maximum(at_risk, 1), 1.0)
    surv = np.cumprod(factors)
    out = np.ones(len(horizons))
    for j, h in enumerate(horizons):
        k = np.searchsorted(t, h, side="right")
        out[j] = surv[k - 1] if k > 0 else 1.0
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------------- speed
_POOLS: list[Any] = [None, -1]  # cached threadpoolctl controller, len(sys.modules) when built


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run a block of tiny fits with every BLAS/OpenMP pool limited to one thread.

    Fits on 20–50 rows are dominated by thread start-up and hand-off: multi-threaded BLAS made
    a 50-row logistic regression ~20× slower here. ``threadpool_limits(1)`` rescans the loaded
    libraries on every call (~4 ms), so the scan is cached and redone only when modules were
    imported since (a new import may load a new pool). Parallelise across processes instead.
    """
    from threadpoolctl import ThreadpoolController

    if _POOLS[0] is None or _POOLS[1] != len(sys.modules):
        _POOLS[0], _POOLS[1] = ThreadpoolController(), len(sys.modules)
    with _POOLS[0].limit(limits=1):
        yield


def kernel_predictions(fitted: FittedBatch, proba: np.ndarray | None, n: int,
                       k: int) -> np.ndarray:
    """``(B, n, k)`` predictions of a batch fitted by a numpy kernel: for every set it fitted,
    row ``models[b]`` of the kernel's ``proba`` (``None`` when it fitted none); for every
    degenerate set, its data-free fallback row."""
    if proba is not None and len(proba) == fitted.size \
            and all(m == b for b, m in enumerate(fitted.models)):
        return proba  # every set grown by the kernel, in order
    out = np.zeros((fitted.size, n, k))
    if proba is not None:
        rows = [b for b, m in enumerate(fitted.models) if m is not None]
        out[rows] = proba[[fitted.models[b] for b in rows]]
    for b, m in enumerate(fitted.models):
        if m is None:
            out[b] = fitted.fallback[b]
    return out


def library_predictions(proba: np.ndarray, exact: dict[int, Any], X_real: np.ndarray) -> None:
    """Overwrite, in place, the rows of ``proba`` of the sets a kernel left to the library
    estimator (``exact[j]``, fitted) with that estimator's ``predict_proba`` in the schema's
    class columns."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j, est in exact.items():
            proba[j] = 0.0
            proba[j][:, np.asarray(est.classes_, dtype=np.int64)] = est.predict_proba(X_real)
