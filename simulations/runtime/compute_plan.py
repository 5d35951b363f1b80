"""Where a run's model fits compute: backends, device and threads, chosen once per run.

``condense`` and ``simulate`` fit the same families on the same kind of synthetic set; they
must do it with the same backends, on the same device and with the same number of threads,
or a simulated site's round costs something else than the central run it stands in for.
:func:`plan_compute` decides all three once, in the process that starts the run, from the
run's :class:`~fedcondense.protocol.condensation.condenser.CondenseConfig` and the machine;
:meth:`ComputePlan.apply` puts the thread count into effect in every process that fits (the
``condense`` process; each simulated site's Ray actor through
:class:`~fedcondense.simulations.runtime.round_timing.TimedSiteHandler`). The plan is written to
``run.json`` as ``"compute"``.

Threads: one per fitting process unless ``OMP_NUM_THREADS`` says otherwise. The shared fits are
many tiny problems (2P synthetic sets of tens of rows); torch's default of one thread per
core splits each small operation over all cores, which pays off only on an idle machine and
turns catastrophic as soon as anything else wants a core — a simulation's own Flower driver,
Ray's raylet, other users. Measured here (2 shared cores, batched Cox on gbsg2, P = 64, per
round): 0.037 s with one thread and 0.028 s with two at load 1; with two threads 0.4–1.6 s
inside the Ray actor while the driver polled its queues (the actor's CPU time ≈ wall: threads
waiting for each other at every parallel region), and 1.36 s in ``condense`` itself with two
threads at load 10 (one thread, load 14: 0.14 s). Library backends already fit
single-threaded (:func:`~fedcondense.protocol.families.base.single_threaded`); this extends the
same rule to torch and to the BLAS under the numpy kernels. Parallelism across sites comes
from ``--site-processes``.

A backend a family lacks is the user's mistake, reported as one line naming every family of
the run and the backends each one has (:class:`~fedcondense.protocol.errors.FedcondenseError`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...protocol.errors import FedcondenseError

_APPLIED: dict[int, tuple[int, bool]] = {}  # pid -> (threads, torch loaded) applied


@dataclass(frozen=True)
class ComputePlan:
    """The run's compute choices (identical at every simulated site and in ``condense``).

    Attributes
    ----------
    backend_by_family : mapping
        Family name → the backend it fits with (``"auto"`` already resolved).
    device : str
        ``"cpu"`` or ``"cuda[:N]"`` for the torch backends (``"cpu"`` when none uses torch).
    threads : int
        Intra-op threads of every process that fits (torch and the BLAS/OpenMP pools).
    uses_torch : bool
        Whether any family of the run computes with torch.
    """

    backend_by_family: Mapping[str, str] = field(default_factory=dict)
    device: str = "cpu"
    threads: int = 1
    uses_torch: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The ``run.json`` ``"compute"`` entry."""
        return {"backend_by_family": dict(self.backend_by_family), "device": self.device,
                "threads": self.threads}

    def apply(self) -> None:
        """Use :attr:`threads` in this process (once per process; cheap to call again)."""
        apply_threads(self.threads)


def apply_threads(threads: int) -> None:
    """Limit this process's torch, BLAS and OpenMP pools to ``threads`` (once per process).

    Sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` for libraries
    loaded later (a Ray actor imports torch on its first round; Ray itself sets
    ``OMP_NUM_THREADS`` to the actor's CPU count), limits the pools already loaded
    (threadpoolctl) and calls ``torch.set_num_threads`` when torch is loaded.
    """
    pid = os.getpid()
    torch_loaded = "torch" in sys.modules
    if _APPLIED.get(pid) == (threads, torch_loaded) and (
            not torch_loaded or _torch_threads() == threads):
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    if torch_loaded:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    _APPLIED[pid] = (threads, torch_loaded)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def current_threads() -> int:
    """This process's torch intra-op threads (``OMP_NUM_THREADS`` before torch is loaded;
    0 when neither says)."""
    if "torch" in sys.modules:
        return _torch_threads()
    raw = os.environ.get("OMP_NUM_THREADS", "")
    return int(raw) if raw.isdigit() else 0


def default_threads(environ: Mapping[str, str] | None = None) -> int:
    """``OMP_NUM_THREADS`` when the user set a positive integer, else 1 (see module doc)."""
    raw = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def backend_usage_line(models: Sequence[str], backend: str) -> str:
    """One line: which of ``models`` lack ``backend`` and the backends each family has."""
    from ...protocol.families import FAMILIES, _load_builtin

    _load_builtin()
    known = sorted({b for cls in FAMILIES.values() for b in cls.backends} | {"auto"})
    lacking = [m for m in models if m in FAMILIES and backend not in FAMILIES[m].backends]
    each = "; ".join(f"{m}: {', '.join(FAMILIES[m].backends)}" for m in models if m in FAMILIES)
    if backend not in known:
        head = f"--backend {backend!r} is not a backend; use one of {', '.join(known)}"
    else:
        names = ", ".join(lacking)
        head = (f"--backend {backend}: {names} {'has' if len(lacking) == 1 else 'have'} no "
                f"{backend} backend")
    return (f"{head} (backends per family: {each}; 'auto' picks batched where a family has it, "
            f"else reference).")


def plan_compute(models: Sequence[str], backend: str = "auto", device: str = "auto",
                 threads: int | None = None) -> ComputePlan:
    """Resolve the run's backends, device and threads once (see module doc).

    Parameters
    ----------
    models : sequence of str
        The run's families (``CondenseConfig.resolved_models(schema)``).
    backend : str
        ``"auto"``, ``"reference"`` or ``"batched"`` (``--backend``).
    device : str
        ``"auto"`` (CUDA when torch sees one and a family computes with torch), ``"cpu"`` or
        ``"cuda[:N]"``.
    threads : int, optional
        Threads per fitting process; default :func:`default_threads`.

    Raises
    ------
    FedcondenseError
        A family lacks ``backend``, or ``backend`` is not a backend at all (one line, exit 2).
    """
    from ...protocol.families import FAMILIES, create_family
    from ...protocol.families.base import resolve_device

    families = {}
    for m in models:
        if backend != "auto" and m in FAMILIES and backend not in FAMILIES[m].backends:
            raise FedcondenseError(backend_usage_line(models, backend))
        try:
            families[m] = create_family(m, backend=backend, device=device)
        except ValueError as exc:
            raise FedcondenseError(f"{exc}.") from None
    uses_torch = any(f.uses_torch for f in families.values())
    resolved = resolve_device(device) if uses_torch else "cpu"
    n = default_threads() if threads is None else int(threads)
    if n < 1:
        raise FedcondenseError(f"threads {n}: use 1 or more.")
    return ComputePlan({m: f.backend for m, f in families.items()}, resolved, n, uses_torch)
