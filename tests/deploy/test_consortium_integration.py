"""A real consortium on loopback: TLS + SuperNode auth, site daemons, crashes, budgets, resume.

Real processes only (SuperLink, ``fedcondense site start`` → SuperNode → ClientApp processes,
the deployed ServerApp from ``deploy/app``), four sites on a bundled dataset:

1. *budget*: site-4's ledger is already nearly spent; a run over all four sites stops cleanly
   after round 1 naming site-4 and its budget; site-4's ledger holds the refusal, no charge,
   and no ``synthetic.csv`` is written;
2. *crashes*: a run over sites 1-3 where site-3 is SIGKILLed after round 1 (the run goes on
   with the other two) and the coordinator (SuperLink + ServerApp) is SIGKILLed mid-round 2 (of 2),
   restarted on the same database and resumed: the run completes, and ``privacy.json``
   charges every site exactly the requests its own ledger recorded for the run (the
   interrupted round's deliveries once, nothing twice).

Slow (several minutes on 2 busy cores: each SecAgg+ round is four message exchanges, each a
fresh ClientApp process per site); deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fedcondense.deploy.consortium import LocalConsortium, split_dataset
from fedcondense.protocol.privacy.accounting import epsilon_spent
from fedcondense.protocol.privacy.ledger import PrivacyLedger, merge_spends

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

RUN = {"epsilon": 1.0, "delta": 1e-5, "rows": 4, "models": "logistic_regression",
       "directions": 16, "sample-rate": 0.5, "init": "random", "mode": "distributed",
       "threshold": 2, "stage-timeout": 45.0, "node-wait": 90.0, "max-attempts": 2}


def _wait(what: str, predicate, timeout: float, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def _answered(c: LocalConsortium, site: str, out: Path, request: str) -> bool:
    """Whether ``site`` answered ``request`` (e.g. "round 1") of the run writing to ``out``."""
    log, state = c.round_log(site), out / "coordinator.json"
    if not (log.exists() and state.exists()):
        return False
    run_id = json.loads(state.read_text())["run_id"]
    return f" answered {run_id} {request} attempt" in log.read_text()


def _run_keys(c: LocalConsortium, site: str, run_id: str) -> list[str]:
    return PrivacyLedger.open(c.ledger(site)).keys_for_run(run_id)


def test_consortium_budget_crash_and_resume(tmp_path: Path) -> None:
    t0 = time.monotonic()
    files, schema = split_dataset("heart_disease", 4, tmp_path / "data")
    # site-4 has spent 0.95 of its ε=1 budget before this run.
    book = PrivacyLedger.create(tmp_path / "c" / "sites" / "site-4" / "state" / "ledger.json",
                                site="site-4", epsilon_budget=1.0, delta_budget=1e-5)
    book.record("earlier-study", "previous use", [{"type": "gaussian", "sigma": 4.5,
                                                    "count": 1}])
    assert 0.85 < book.spent() < 1.0
    with LocalConsortium(tmp_path / "c", files, schema, budgets={"site-4": 1.0}) as c:
        c.start_link()
        c.register_sites()
        c.start_sites(list(files))
        timings = {"start": time.monotonic() - t0}

        # ---- 1. exhausted budget: the run stops cleanly, naming site-4 -----------------
        out_b = tmp_path / "run-budget"
        rid = c.submit({**RUN, "schema-path": str(schema), "out-dir": str(out_b), "sites": 4,
                        "rounds": 3})
        status = c.wait(rid, timeout=400)
        timings["budget_run"] = time.monotonic() - t0 - timings["start"]
        run = json.loads((out_b / "run.json").read_text())
        assert status == "finished:failed" and run["status"] == "stopped", run.get("message")
        assert "site site-4" in run["message"] and "budget ε=1" in run["message"]
        assert [h["round"] for h in run["rounds"]] == [1]  # round 1 applied (3 others), then stop
        assert not (out_b / "synthetic.csv").exists()
        ledger4 = PrivacyLedger.open(c.ledger("site-4"))
        assert ledger4.spent() == pytest.approx(book.spent())  # nothing charged
        assert [r.key.split("/", 1)[1] for r in ledger4.refusals] == ["round/1/0"]
        assert "REFUSED" in c.round_log("site-4").read_text()
        c.sites.pop("site-4").stop()  # graceful: the SuperNode signs off
        exited = {k: p.poll() for k, p in c.sites.items() if p.poll() is not None}
        assert not exited, f"site daemons exited: {exited}; see {c.logs}"

        # ---- 2. site crash + coordinator crash + resume --------------------------------
        out = tmp_path / "run-crash"
        cfg = {**RUN, "schema-path": str(schema), "out-dir": str(out), "sites": 3, "rounds": 2}
        c.submit(cfg)
        _wait("round 1 at site-3", lambda: _answered(c, "site-3", out, "round 1"), 400)
        c.kill_site("site-3")
        _wait("round 2 at site-1", lambda: _answered(c, "site-1", out, "round 2"), 400)
        c.kill_link()
        assert not (out / "synthetic.csv").exists()
        state = json.loads((out / "coordinator.json").read_text())
        c.start_link()
        rid = c.submit({**cfg, "resume": True})
        status = c.wait(rid, timeout=500)
        timings["crash_run"] = time.monotonic() - t0 - timings["start"] - timings["budget_run"]
        run = json.loads((out / "run.json").read_text())
        privacy = json.loads((out / "privacy.json").read_text())
        assert status == "finished:completed", run.get("message")
        assert run["status"] == "completed" and (out / "synthetic.csv").exists()
        assert run["resumed_from_round"] == 1 and privacy["run_id"] == state["run_id"]
        assert [h["round"] for h in run["rounds"]] == [1, 2]
        assert [t["round"] for t in run["transport"]] == [1, 2]  # both sessions
        assert "site-3" not in run["rounds"][-1]["contributed"]

        # privacy.json charges each site exactly what its own ledger recorded for the run.
        for site in ("site-1", "site-2", "site-3"):
            keys = _run_keys(c, site, state["run_id"])
            assert len(keys) == len(set(keys))
            assert privacy["per_site_requests"][site]["rounds"] == len(keys), (site, keys)
            events = [e.spend for e in PrivacyLedger.open(c.ledger(site)).events
                      if e.run_id == state["run_id"]]
            assert privacy["per_site"][site] == pytest.approx(
                epsilon_spent(merge_spends(events), 1e-5), rel=1e-6)
        # the interrupted round 2 was answered twice by the survivors (attempt 0 before the
        # crash, a new attempt after it): both charged once, neither twice.
        assert sum("/round/2/" in k for k in _run_keys(c, "site-1", state["run_id"])) == 2
    print(f"timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
