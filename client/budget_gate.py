"""The site daemon's privacy gate: its own ledger decides whether a request is answered.

Called by :class:`~fedcondense.client.site_handler.CondensationHandler` *before* the site's
records are sampled or any per-record loss is computed. The SuperNode's node config names
the ledger and budget (written by ``fedcondense site start`` from ``site.toml``)::

    ledger-path = "/var/lib/fedcondense/ledger.json"
    budget-epsilon = 3.0
    budget-delta = 1e-05
    round-log = "/var/log/fedcondense/rounds.log"   # one line per request (tail -f)

Without ``ledger-path`` (one-machine simulations) the gate is open and only the coordinator
accounts. With it, :func:`fedcondense.protocol.privacy.site_budget.authorise` prices the request from
the site's own sampling rate and record count, checks and charges the ledger atomically, or
refuses: the refusal is logged at the site, kept in the ledger and sent to the coordinator as
one line starting with :data:`~fedcondense.protocol.privacy.site_budget.BUDGET_MARK`.

:func:`hello_info` adds to the site's hello reply what the coordinator may know: the site's
*declared capacity* (``capacity`` in its configuration: a public upper bound on its records,
used only to scale secure aggregation and the update; never the exact record count, which no
ε covers under add/remove adjacency) and the ledger keys already charged for the run, so that
a resumed coordinator counts every earlier delivery exactly once.

The site's trust policy (:class:`~fedcondense.protocol.privacy.site_policy.SitePolicy`:
``trust-aggregator``, ``min-contributors``) comes from the same node config and decides which
noise multiplier the ledger is charged at.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..protocol.wire.messages import RoundMessage
from .app import SiteFailure

LOG = logging.getLogger("fedcondense.site")


def open_site_ledger(node_config: Mapping[str, Any]) -> Any:
    """The site's :class:`~fedcondense.protocol.privacy.ledger.PrivacyLedger` (a missing one is
    refused, never recreated: the operator creates it with ``fedcondense site init``).

    A ledger whose site or budget differ from the node config is refused: a budget never
    changes once spending started.
    """
    from ..protocol.errors import PrivacyError
    from ..protocol.privacy.ledger import PrivacyLedger

    site = str(node_config["site-id"])
    path = Path(str(node_config["ledger-path"]))
    try:
        eps = float(node_config["budget-epsilon"])
        delta = float(node_config["budget-delta"])
    except (KeyError, TypeError, ValueError):
        raise SiteFailure(f"site {site}: node config has ledger-path but no valid "
                          f"budget-epsilon/budget-delta; restart with `fedcondense site "
                          f"start`.") from None
    try:
        book = PrivacyLedger.open(path, site=site, epsilon_budget=eps, delta_budget=delta,
                                  create=False)
    except PrivacyError as exc:
        raise SiteFailure(f"site {site}: {exc}") from None
    if book.site != site or book.delta_budget != delta:
        raise SiteFailure(f"site {site}: ledger {path} belongs to site {book.site} "
                          f"(δ={book.delta_budget:g}); fix the node config.")
    return book


def gate(message: RoundMessage, node_config: Mapping[str, Any], *, n_records: int,
         free_dim: int) -> None:
    """Charge ``message`` to the site's ledger or raise :class:`SiteFailure` (refusal)."""
    if "ledger-path" not in node_config:
        return
    from ..protocol.errors import PrivacyError
    from ..protocol.privacy.site_budget import BudgetRefusal, authorise
    from ..protocol.privacy.site_policy import SitePolicy

    site = str(node_config["site-id"])
    book = open_site_ledger(node_config)
    rates = message.hyper.get("sample_rate_by_site" if message.kind == "round"
                              else "round_sample_rate_by_site", {})
    try:
        q = float(rates[site])
    except (KeyError, TypeError, ValueError):
        q = float("nan")
    try:
        policy = SitePolicy.from_node_config(node_config)
    except PrivacyError as exc:
        raise SiteFailure(f"site {site}: {exc}") from None
    try:
        spend = authorise(book, message, q=q, n_records=n_records, free_dim=free_dim,
                          policy=policy)
    except BudgetRefusal as exc:
        LOG.error("%s", exc)
        _round_log(node_config, f"REFUSED {exc}")
        raise SiteFailure(str(exc)) from None
    after = open_site_ledger(node_config)
    _round_log(node_config, f"site {site} answered {message.run_id} {message.kind} "
               f"{message.round_index} attempt {message.attempt}: σ={spend['sigma']:.4g}"
               f"{', q=' + format(spend['q'], 'g') if 'q' in spend else ''}; spent "
               f"ε={after.spent():.4g} of {after.epsilon_budget:g}, remaining "
               f"ε={after.remaining():.4g}")


def _round_log(node_config: Mapping[str, Any], line: str) -> None:
    """One line per request in the operator's ``round-log`` file (if configured)."""
    path = node_config.get("round-log")
    if not path:
        return
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(str(path), "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} {' '.join(line.split())}\n")


def declared_capacity(node_config: Mapping[str, Any]) -> int:
    """The site's declared capacity (public bound on its records) from its own config."""
    raw = node_config.get("capacity")
    try:
        capacity = int(str(raw))
    except (TypeError, ValueError):
        capacity = 0
    if capacity < 1:
        raise SiteFailure(f"site {node_config.get('site-id')}: node config capacity={raw!r} "
                          f"is not a positive integer; declare a public upper bound on the "
                          f"site's records (site.toml [site] capacity).")
    return capacity


def hello_info(node_config: Mapping[str, Any], hello: Mapping[str, Any]) -> dict[str, Any]:
    """Extra hello fields: ``capacity`` and the ledger keys charged for the hello's run.

    The hello's coordinator ``session`` is recorded first (under the ledger lock), so that no
    request of an earlier session can be charged after the keys are reported.
    """
    from ..protocol.privacy.ledger import ledger_lock

    run_id = str(hello.get("run_id", ""))
    out: dict[str, Any] = {}
    out["capacity"] = declared_capacity(node_config)
    if "ledger-path" in node_config and run_id:
        with ledger_lock(str(node_config["ledger-path"])):
            book = open_site_ledger(node_config)
            if isinstance(hello.get("session"), int):
                book.open_session(run_id, int(hello["session"]))
            out["charged"] = ",".join(book.keys_for_run(run_id))
        out["budget"] = f"ε={book.epsilon_budget:g} δ={book.delta_budget:g}, spent " \
                        f"ε={book.spent():.4g}"
    return out
