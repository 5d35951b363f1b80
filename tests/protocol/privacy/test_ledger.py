"""The site privacy ledger: persistence, composition, refusal before spending."""

import json

import pytest

from fedcondense.protocol.errors import PrivacyError
from fedcondense.protocol.privacy.accounting import epsilon_spent
from fedcondense.protocol.privacy.ledger import PrivacyLedger, reserve

RUN = {"type": "sampled_gaussian", "q": 0.2, "sigma": 4.0, "count": 50}


def test_ledger_persists_and_recomposes(tmp_path):
    path = tmp_path / "ledger.json"
    book = PrivacyLedger.create(path, site="h1", epsilon_budget=3.0, delta_budget=1e-5)
    book.record("r1", "first", [RUN])
    book.record("r2", "second", [RUN])
    again = PrivacyLedger.open(path)
    assert len(again.events) == 2
    assert again.spent() == pytest.approx(epsilon_spent([RUN, RUN], 1e-5))
    assert json.loads(path.read_text())["epsilon_spent"] == pytest.approx(again.spent())


def test_over_budget_run_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "ledger.json"
    book = PrivacyLedger.create(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5)
    before = path.read_bytes()
    big = {"type": "sampled_gaussian", "q": 0.5, "sigma": 0.8, "count": 100}
    with pytest.raises(PrivacyError, match=r"site 'h1'.*budget ε=1"):
        book.record("r1", "too much", [big])
    assert path.read_bytes() == before
    assert PrivacyLedger.open(path).events == ()


def test_budget_cannot_be_changed_and_a_ledger_is_never_overwritten(tmp_path):
    path = tmp_path / "ledger.json"
    PrivacyLedger.create(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5)
    with pytest.raises(PrivacyError, match="cannot be changed"):
        PrivacyLedger.open(path, epsilon_budget=5.0)
    PrivacyLedger.open(path).record("r1", "spent", [{"type": "gaussian", "sigma": 5.0, "count": 1}])
    before = path.read_bytes()
    with pytest.raises(PrivacyError, match="already exists"):
        PrivacyLedger.create(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5)
    same = PrivacyLedger.open(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5, create=True)
    assert len(same.events) == 1  # create=True opens an existing ledger as it is
    assert path.read_bytes() == before


def test_a_missing_ledger_is_refused_not_recreated(tmp_path):
    path = tmp_path / "lost.json"
    # even with a budget at hand, opening never creates unless asked explicitly
    with pytest.raises(PrivacyError, match="no privacy ledger there.*never recreated.*site init"):
        PrivacyLedger.open(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5)
    assert not path.exists()
    book = PrivacyLedger.open(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5, create=True)
    assert book.spent() == 0 and PrivacyLedger.open(path).epsilon_budget == 1.0


@pytest.mark.parametrize("eps,delta,needle", [
    (0.0, 1e-5, "ε > 0"), (float("inf"), 1e-5, "ε > 0"), (1.0, 0.0, "δ"), (1.0, 1.0, "δ"),
])
def test_create_refuses_a_bad_budget(tmp_path, eps, delta, needle):
    with pytest.raises(PrivacyError, match=needle):
        PrivacyLedger.create(tmp_path / "l.json", site="h1", epsilon_budget=eps,
                             delta_budget=delta)
    assert not (tmp_path / "l.json").exists()


def test_reserve_is_one_locked_check_and_record(tmp_path):
    path = tmp_path / "ledger.json"
    PrivacyLedger.create(path, site="h1", epsilon_budget=1.0, delta_budget=1e-5)
    one = {"type": "gaussian", "sigma": 5.0, "count": 1}
    first = reserve(path, "a", "first", [one], key="a/condense", epsilon_budget=1.0)
    assert len(first.events) == 1
    # a stale in-memory copy cannot hide the first spend: reserve re-reads under the lock
    big = {"type": "gaussian", "sigma": 5.0, "count": 3}
    assert PrivacyLedger.open(path).spent([big]) > 1.0
    with pytest.raises(PrivacyError, match="budget ε=1"):
        reserve(path, "b", "second", [big], key="b/condense")
    with pytest.raises(PrivacyError, match="already answered"):
        reserve(path, "a", "first again", [one], key="a/condense")
    with pytest.raises(PrivacyError, match="cannot be changed"):
        reserve(path, "c", "other budget", [one], epsilon_budget=2.0)
    assert len(PrivacyLedger.open(path).events) == 1


def test_corrupt_ledger_is_refused(tmp_path):
    path = tmp_path / "ledger.json"
    path.write_text("{not json")
    with pytest.raises(PrivacyError, match="not a valid"):
        PrivacyLedger.open(path)
    path.write_text("[]")
    with pytest.raises(PrivacyError, match="not a valid"):
        PrivacyLedger.open(path)
