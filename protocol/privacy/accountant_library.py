"""dp-accounting's modules, imported without running its package ``__init__`` first.

``dp_accounting/__init__.py`` re-exports every accountant and the calibration helpers, and
importing them pulls in ``scipy.stats``, ``scipy.signal`` and most of ``scipy.optimize``:
about a second of every ``condense`` start-up and every site's, although an RDP run needs
only ``dp_event``, ``privacy_accountant`` and ``rdp`` (and ``scipy.special``). :func:`install`
registers the package as a *lazy package*: a module with dp-accounting's own ``__spec__`` and
``__path__``, so that ``import dp_accounting.rdp`` loads exactly that subpackage from the
installed library, and whose ``__init__`` runs the first time anything asks it for a name it
re-exports (``dp_accounting.GaussianDpEvent``). The code that computes ε is the library's
own either way; only the moment its unrelated modules are imported changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

PACKAGE = "dp_accounting"
_lock = threading.Lock()


class _LazyPackage(types.ModuleType):
    """A package whose ``__init__`` runs on the first lookup of a name it does not yet hold."""

    _initialised = False

    def __getattr__(self, name: str) -> Any:  # only called for names not (yet) present
        if name.startswith("__") or type(self)._initialised:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        if importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
            # a submodule (``from dp_accounting import rdp``): load just that one
            return importlib.import_module(f"{PACKAGE}.{name}")
        with _lock:
            if not type(self)._initialised:
                type(self)._initialised = True
                spec = self.__spec__
                assert spec is not None and spec.loader is not None
                spec.loader.exec_module(self)
        return object.__getattribute__(self, name)


def install() -> types.ModuleType:
    """Make ``import dp_accounting.<submodule>`` skip the package ``__init__`` (idempotent;
    a no-op when dp-accounting is already imported). Returns the package module."""
    with _lock:
        if PACKAGE in sys.modules:
            return sys.modules[PACKAGE]
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.submodule_search_locations is None:
            raise ModuleNotFoundError(f"{PACKAGE} is not installed; run the README's set-up")
        module = _LazyPackage(PACKAGE)
        module.__spec__ = spec
        module.__path__ = list(spec.submodule_search_locations)
        module.__file__ = spec.origin
        module.__loader__ = spec.loader
        module.__package__ = PACKAGE
        sys.modules[PACKAGE] = module
        return module


install()
# the modules an RDP accountant needs; PLD on request (:func:`pld_accountant_class`)
if TYPE_CHECKING:  # the same modules, as static imports for the type checker
    from dp_accounting import dp_event, privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant
else:  # ``from dp_accounting import ...`` would look the names up on the package first
    dp_event = importlib.import_module(f"{PACKAGE}.dp_event")
    privacy_accountant = importlib.import_module(f"{PACKAGE}.privacy_accountant")
    rdp_privacy_accountant = importlib.import_module(f"{PACKAGE}.rdp.rdp_privacy_accountant")


def pld_accountant_class() -> type:
    """dp-accounting's ``PLDAccountant`` (imports its PLD modules on first use)."""
    module = importlib.import_module(f"{PACKAGE}.pld.pld_privacy_accountant")
    return module.PLDAccountant  # type: ignore[no-any-return]


__all__ = ["dp_event", "install", "pld_accountant_class", "privacy_accountant",
           "rdp_privacy_accountant"]
