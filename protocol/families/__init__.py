"""Model families: one registry of the clinical model classes the synthetic set serves.

``FAMILIES`` maps each interface name (see ``shared/interface.md``) to its class;
:func:`create_family` builds one with explicit keyword parameters.
"""

from __future__ import annotations

from typing import Any

from .base import FitTargets, FittedBatch, ModelFamily

FAMILIES: dict[str, type[ModelFamily]] = {}


def register(cls: type[ModelFamily]) -> type[ModelFamily]:
    """Class decorator adding a family to :data:`FAMILIES` under ``cls.name`` (for families
    outside this package; the built-in ones are listed in :func:`_load_builtin`)."""
    FAMILIES[cls.name] = cls
    return cls


def create_family(name: str, backend: str = "auto", device: str = "auto",
                  **params: Any) -> ModelFamily:
    """Instantiate family ``name``; ``backend="auto"`` picks "batched" where available.

    ``device`` (``"auto"`` | ``"cpu"`` | ``"cuda"``) places torch backends; ``"auto"`` uses
    CUDA when torch sees one. Library backends accept only ``"auto"``/``"cpu"``.
    """
    _load_builtin()
    if name not in FAMILIES:
        raise ValueError(
            f"unknown model family '{name}'; choose from {', '.join(sorted(FAMILIES))}"
        )
    cls = FAMILIES[name]
    if backend == "auto":
        backend = "batched" if "batched" in cls.backends else "reference"
    return cls(backend=backend, device=device, **params)


def families_for_task(task: str) -> list[str]:
    """Names of the registered families for ``"classification"`` or ``"survival"``."""
    _load_builtin()
    return [n for n, c in FAMILIES.items() if c.task == task]


def _load_builtin() -> None:
    """Register the built-in families, in the order reports list them (imported lazily:
    torch and lifelines are slow). The family modules never import this registry, so the
    registry and the families import each other in no cycle."""
    global _builtin_loaded
    if _builtin_loaded:
        return
    from . import classifiers, mlp, survival

    for cls in (classifiers.LogisticRegressionFamily, classifiers.DecisionTreeFamily,
                classifiers.RandomForestFamily, classifiers.GradientBoostingFamily,
                classifiers.KNNFamily, mlp.MLPFamily, survival.CoxPHFamily,
                survival.RandomSurvivalForestFamily):
        FAMILIES.setdefault(cls.name, cls)
    _builtin_loaded = True


_builtin_loaded = False


__all__ = ["FAMILIES", "FitTargets", "FittedBatch", "ModelFamily", "create_family",
           "families_for_task", "register"]
