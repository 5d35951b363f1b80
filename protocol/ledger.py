"""A site's persistent, append-only privacy ledger.

The ledger is a JSON file holding the site's budget ``(ε_B, δ_B)`` and an append-only list of
immutable events, each a :data:`~fedcondense.protocol.accounting.Spend` with when/what/why.
The total spent is always *recomputed* by composing every event with the accountant at
``δ_B`` (never by adding epsilons), so it stays tight and auditable.

Before a run touches data it calls :meth:`PrivacyLedger.check` with everything it plans to
spend; an over-budget plan is refused with a message naming the ledger and its budget.
Writes are atomic (temporary file + ``os.replace``), so a crash never leaves a torn ledger.

A site daemon charges one event per answered request under a unique *key*
(``run/kind/round/attempt``, see :mod:`fedcondense.protocol.site_budget`): a key already in
the ledger is never charged again. Requests the site refused are kept in ``refusals`` (when,
key, reason) so that ``fedcondense site status`` can count them. :func:`ledger_lock` serialises
concurrent ClientApp processes of one site around a check-and-record.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedcondense.protocol.accounting import AccountantName, Spend, epsilon_spent
from fedcondense.protocol.atomic_file import atomic_write_text
from fedcondense.protocol.errors import PrivacyError

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
    ) -> "PrivacyLedger":
        """Open an existing ledger, or create it when a budget is given.

        An existing ledger keeps its own budget; passing a *different* budget is refused so
        that a budget can never be raised silently.
        """
        p = Path(path)
        if p.exists():
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
            except (ValueError, KeyError, TypeError):
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
        if epsilon_budget is None:
            raise PrivacyError(f"{p}: no ledger there yet; pass --budget to create it.")
        if not epsilon_budget > 0:
            raise PrivacyError(f"{p}: the budget must be ε > 0, got {epsilon_budget}.")
        ledger = cls(p, site, float(epsilon_budget), float(delta_budget or 1e-5), accountant, [])
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
        self._events += [LedgerEvent(now, run_id, description, dict(s), key) for s in spends]
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
