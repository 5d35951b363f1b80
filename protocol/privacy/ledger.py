"""A site's persistent, append-only privacy ledger.

The ledger is a JSON file holding the site's budget ``(ε_B, δ_B)`` and an append-only list of
immutable events, each a :data:`~fedcondense.protocol.privacy.accounting.Spend` with when/what/why.
The total spent is always *recomputed* by composing every event with the accountant at
``δ_B`` (never by adding epsilons), so it stays tight and auditable.

A ledger is created only explicitly (:meth:`PrivacyLedger.create`, behind ``fedcondense
ledger create`` and ``fedcondense site init``); opening a missing ledger is an error, never a
silent fresh start with the full budget (that would forget everything already spent).

Every path that spends goes through one locked check-and-record: :func:`reserve` (a central
``condense`` run, before it reads any data) or
:func:`~fedcondense.protocol.privacy.site_budget.authorise` (a site daemon, per request). Both hold
:func:`ledger_lock`, re-read the file, check the budget and append in one step, so two
concurrent runs can never both pass the check on the same remaining budget. Writes are
atomic (temporary file + ``os.replace``), so a crash never leaves a torn ledger.

A site daemon charges one event per answered request under a unique *key*
(``run/kind/round/attempt``, see :mod:`fedcondense.protocol.privacy.site_budget`): a key already in
the ledger is never charged again. Requests the site refused are kept in ``refusals`` (when,
key, reason) so that ``fedcondense site status`` can count them.
"""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data.atomic_file import atomic_write_text
from ..errors import PrivacyError
from .accounting import AccountantName, Spend, epsilon_spent

LEDGER_FORMAT = "fedcondense-ledger/1"


@dataclass(frozen=True)
class LedgerEvent:
    """One immutable spend record."""

    timestamp: str
    run_id: str
    description: str
    spend: Spend
    key: str = ""


@dataclass(frozen=True)
class Refusal:
    """One request the site refused to answer (nothing was spent)."""

    timestamp: str
    key: str
    reason: str


@contextmanager
def ledger_lock(path: str | Path) -> Iterator[None]:
    """Exclusive advisory lock on ``<ledger>.lock`` for a read-check-record sequence."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class PrivacyLedger:
    """Persistent budget and spend history of one data holder (a site)."""

    def __init__(
        self,
        path: Path,
        site: str,
        epsilon_budget: float,
        delta_budget: float,
        accountant: AccountantName,
        events: list[LedgerEvent],
        refusals: list[Refusal] | None = None,
    ) -> None:
        self.path = path
        self.site = site
        self.epsilon_budget = epsilon_budget
        self.delta_budget = delta_budget
        self.accountant: AccountantName = accountant
        self._events = list(events)
        self._refusals = list(refusals or [])
        self._sessions: dict[str, int] = {}

    # ------------------------------------------------------------------ open/create
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        site: str = "site",
        epsilon_budget: float | None = None,
        delta_budget: float | None = None,
        accountant: AccountantName = "rdp",
        create: bool = False,
    ) -> "PrivacyLedger":
        """Open an existing ledger (or, with ``create=True`` only, create a missing one).

        An existing ledger keeps its own budget; passing a *different* ``epsilon_budget`` is
        refused so that a budget can never be raised silently. A missing ledger is refused
        unless ``create`` is set (an operator's explicit request, see :meth:`create`).
        """
        p = Path(path)
        if not p.exists():
            if not create:
                raise PrivacyError(
                    f"{p}: no privacy ledger there. A missing ledger is never recreated (that "
                    f"would forget spent privacy): restore it from backup, or create one "
                    f"explicitly (`fedcondense site init --config site.toml` at a site, "
                    f"`fedcondense ledger create {p} --site ID --budget-epsilon E "
                    f"--budget-delta D` for central runs).")
            if epsilon_budget is None or delta_budget is None:
                raise PrivacyError(f"{p}: creating a ledger needs its ε and δ budget.")
            return cls.create(p, site=site, epsilon_budget=epsilon_budget,
                              delta_budget=delta_budget, accountant=accountant)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
            if raw.get("format") != LEDGER_FORMAT:
                raise ValueError("format")
            ledger = cls(
                p, raw["site"], float(raw["epsilon_budget"]), float(raw["delta_budget"]),
                raw.get("accountant", "rdp"), [LedgerEvent(**e) for e in raw["events"]],
                [Refusal(**r) for r in raw.get("refusals", [])],
            )
            ledger._sessions = {str(k): int(v) for k, v in raw.get("sessions", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PrivacyError(
                f"{p}: not a valid fedcondense privacy ledger; restore it from backup "
                f"(never delete a ledger: that would forget spent privacy)."
            ) from None
        if epsilon_budget is not None and epsilon_budget != ledger.epsilon_budget:
            raise PrivacyError(
                f"{p}: the ledger's budget is ε={ledger.epsilon_budget:g}; --budget "
                f"{epsilon_budget:g} differs. A budget cannot be changed on an existing ledger."
            )
        return ledger

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        site: str,
        epsilon_budget: float,
        delta_budget: float,
        accountant: AccountantName = "rdp",
    ) -> "PrivacyLedger":
        """Create a new, empty ledger (the operator's explicit act); refuse an existing one.

        Raises
        ------
        PrivacyError
            The file exists (a ledger is never overwritten), or the budget is not a finite
            ε > 0 with 0 < δ < 1.
        """
        p = Path(path)
        if not (math.isfinite(epsilon_budget) and epsilon_budget > 0):
            raise PrivacyError(f"{p}: the budget must be a finite ε > 0, got {epsilon_budget:g}.")
        if not 0 < delta_budget < 1:
            raise PrivacyError(f"{p}: the budget's δ must be in (0, 1), got {delta_budget:g}.")
        if accountant not in ("rdp", "pld"):
            raise PrivacyError(f"{p}: accountant must be 'rdp' or 'pld', got {accountant!r}.")
        with ledger_lock(p):
            if p.exists():
                raise PrivacyError(f"{p}: a ledger already exists there; it is never "
                                   f"overwritten (its spends would be forgotten).")
            ledger = cls(p, site, float(epsilon_budget), float(delta_budget), accountant, [])
            ledger._write()
        return ledger

    # ------------------------------------------------------------------ queries
    @property
    def events(self) -> tuple[LedgerEvent, ...]:
        return tuple(self._events)

    @property
    def refusals(self) -> tuple[Refusal, ...]:
        return tuple(self._refusals)

    def has_key(self, key: str) -> bool:
        """Whether an event was already charged under ``key``."""
        return bool(key) and any(e.key == key for e in self._events)

    def current_session(self, run_id: str) -> int | None:
        """Latest coordinator session of ``run_id`` this site said hello to (if any)."""
        return self._sessions.get(run_id)

    def open_session(self, run_id: str, session: int) -> None:
        """Remember that coordinator session ``session`` of ``run_id`` started (requests of
        earlier sessions are then stale: a restarted coordinator has taken over)."""
        if session > self._sessions.get(run_id, -1):
            self._sessions[run_id] = int(session)
            self._write()

    def keys_for_run(self, run_id: str) -> list[str]:
        """Keys charged for ``run_id``, in order."""
        return [e.key for e in self._events if e.run_id == run_id and e.key]

    def spent(self, extra: list[Spend] | None = None) -> float:
        """ε spent at the ledger's δ, composing every event (and ``extra`` if given)."""
        spends = [e.spend for e in self._events] + list(extra or [])
        return epsilon_spent(merge_spends(spends), self.delta_budget, self.accountant)

    def remaining(self) -> float:
        return max(0.0, self.epsilon_budget - self.spent())

    def check(self, planned: list[Spend]) -> float:
        """Refuse ``planned`` if it would exceed the budget; return ε after it otherwise."""
        after = self.spent(planned)
        if after > self.epsilon_budget + 1e-9:
            raise PrivacyError(
                f"{self.path}: site '{self.site}' would spend ε={after:.3g} of its budget "
                f"ε={self.epsilon_budget:g} (δ={self.delta_budget:g}); already spent "
                f"ε={self.spent():.3g}. Lower --epsilon or --rounds, or stop using this site's data."
            )
        return after

    # ------------------------------------------------------------------ append
    def record(self, run_id: str, description: str, spends: list[Spend],
               key: str = "") -> None:
        """Append events (after checking them) and persist atomically.

        A non-empty ``key`` already charged is refused (:class:`PrivacyError`): the same
        request is never paid twice.
        """
        if self.has_key(key):
            raise PrivacyError(f"{self.path}: site '{self.site}' already answered request "
                               f"{key}; a repeated request is refused, not charged again.")
        self.check(spends)
        now = _now()
        self._events += [LedgerEvent(now, run_id, description, Spend(**s), key) for s in spends]
        self._write()

    def refuse(self, key: str, reason: str) -> None:
        """Persist a refusal (nothing spent) so that the operator can see it."""
        self._refusals.append(Refusal(_now(), key, " ".join(reason.split())[:500]))
        self._write()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LEDGER_FORMAT,
            "site": self.site,
            "epsilon_budget": self.epsilon_budget,
            "delta_budget": self.delta_budget,
            "accountant": self.accountant,
            "events": [asdict(e) for e in self._events],
            "refusals": [asdict(r) for r in self._refusals],
            "sessions": dict(self._sessions),
            "epsilon_spent": self.spent(),
        }

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2) + "\n")


def reserve(path: str | Path, run_id: str, description: str, spends: list[Spend], *,
            key: str = "", epsilon_budget: float | None = None) -> PrivacyLedger:
    """Check and record ``spends`` in one step under :func:`ledger_lock` (before data access).

    The ledger is re-read under the lock, so a concurrent run's spend is always seen: of two
    runs that each fit the remaining budget alone but not together, exactly one is recorded
    and the other refused. The spend stays recorded once the caller has touched data (a
    failed run may still have looked at its records).

    Parameters
    ----------
    path : str or Path
        An existing ledger (a missing one is refused, see :meth:`PrivacyLedger.open`).
    run_id, description : str
        What the events say.
    spends : list of Spend
        Everything the run will spend.
    key : str
        Optional unique key; a key already charged is refused.
    epsilon_budget : float, optional
        The budget the caller expects; a different ledger budget is refused.

    Returns
    -------
    PrivacyLedger
        The ledger after the record.

    Raises
    ------
    PrivacyError
        Missing or invalid ledger, a different budget, a repeated key, or over budget.
    """
    with ledger_lock(path):
        book = PrivacyLedger.open(path, epsilon_budget=epsilon_budget)
        book.record(run_id, description, spends, key=key)
    return book


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def merge_spends(spends: list[Spend]) -> list[Spend]:
    """Identical mechanisms folded into one self-composition (same ε, far cheaper to
    account: one event per distinct ``(type, q, σ)`` instead of one per round)."""
    merged: dict[tuple[Any, ...], Spend] = {}
    for s in spends:
        key = (s["type"], s.get("q"), s["sigma"])
        if key in merged:
            merged[key]["count"] = int(merged[key].get("count", 1)) + int(s.get("count", 1))
        else:
            merged[key] = {**s, "count": int(s.get("count", 1))}
    return list(merged.values())
