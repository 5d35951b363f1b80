"""A site's persistent, append-only privacy ledger.

The ledger is a JSON file holding the site's budget ``(ε_B, δ_B)`` and an append-only list of
immutable events, each a :data:`~fedcondense.protocol.accounting.Spend` with when/what/why.
The total spent is always *recomputed* by composing every event with the accountant at
``δ_B`` (never by adding epsilons), so it stays tight and auditable.

Before a run touches data it calls :meth:`PrivacyLedger.check` with everything it plans to
spend; an over-budget plan is refused with a message naming the ledger and its budget.
Writes are atomic (temporary file + ``os.replace``), so a crash never leaves a torn ledger.
"""

from __future__ import annotations

import json
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
    ) -> None:
        self.path = path
        self.site = site
        self.epsilon_budget = epsilon_budget
        self.delta_budget = delta_budget
        self.accountant: AccountantName = accountant
        self._events = list(events)

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
                )
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

    def spent(self, extra: list[Spend] | None = None) -> float:
        """ε spent at the ledger's δ, composing every event (and ``extra`` if given)."""
        spends = [e.spend for e in self._events] + list(extra or [])
        return epsilon_spent(spends, self.delta_budget, self.accountant)

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
    def record(self, run_id: str, description: str, spends: list[Spend]) -> None:
        """Append events (after checking them) and persist atomically."""
        self.check(spends)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._events += [LedgerEvent(now, run_id, description, dict(s)) for s in spends]
        self._write()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LEDGER_FORMAT,
            "site": self.site,
            "epsilon_budget": self.epsilon_budget,
            "delta_budget": self.delta_budget,
            "accountant": self.accountant,
            "events": [asdict(e) for e in self._events],
            "epsilon_spent": self.spent(),
        }

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2) + "\n")
