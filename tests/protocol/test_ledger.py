"""The site privacy ledger: persistence, composition, refusal before spending."""

import json

import pytest

from fedcondense.protocol.accounting import epsilon_spent
from fedcondense.protocol.errors import PrivacyError
from fedcondense.protocol.ledger import PrivacyLedger

RUN = {"type": "sampled_gaussian", "q": 0.2, "sigma": 4.0, "count": 50}


def test_ledger_persists_and_recomposes(tmp_path):
    path = tmp_path / "ledger.json"
    book = PrivacyLedger.open(path, site="h1", epsilon_budget=3.0, delta_budget=1e-5)
    book.record("r1", "first", [RUN])
    book.record("r2", "second", [RUN])
    again = PrivacyLedger.open(path)
    assert len(again.events) == 2
    assert again.spent() == pytest.approx(epsilon_spent([RUN, RUN], 1e-5))
    assert json.loads(path.read_text())["epsilon_spent"] == pytest.approx(again.spent())


def test_over_budget_run_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "ledger.json"
    book = PrivacyLedger.open(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5)
    before = path.read_bytes()
    big = {"type": "sampled_gaussian", "q": 0.5, "sigma": 0.8, "count": 100}
    with pytest.raises(PrivacyError, match=r"site 'h1'.*budget ε=1"):
        book.record("r1", "too much", [big])
    assert path.read_bytes() == before
    assert PrivacyLedger.open(path).events == ()


def test_budget_cannot_be_changed_or_missing(tmp_path):
    path = tmp_path / "ledger.json"
    PrivacyLedger.open(path, epsilon_budget=1.0)
    with pytest.raises(PrivacyError, match="cannot be changed"):
        PrivacyLedger.open(path, epsilon_budget=5.0)
    with pytest.raises(PrivacyError, match="--budget"):
        PrivacyLedger.open(tmp_path / "new.json")


def test_corrupt_ledger_is_refused(tmp_path):
    path = tmp_path / "ledger.json"
    path.write_text("{not json")
    with pytest.raises(PrivacyError, match="not a valid"):
        PrivacyLedger.open(path)
