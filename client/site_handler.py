"""The site's computation behind the ClientApp: a thin adapter around the protocol maths.

:class:`CondensationHandler` is called with each validated :class:`RoundMessage` and the
site's node config (``site-id``, ``data-path``, ``schema-path``). It loads and validates the
site's table once per process, then answers

* ``init`` requests with its noisy group sums
  (:func:`~fedcondense.protocol.condensation.federation.answer_init`),
* ``round`` requests with its clipped, noised P-vector
  (:func:`~fedcondense.protocol.condensation.federation.answer_round`).

Noise and Poisson sampling always use the site's own cryptographically secure source. A
request naming a noise seed (``hyper["noise_seed"]``) is refused before anything is charged
or computed, unless the site's *own* config allows seeded noise (``allow-seeded-noise``,
which only ``fedcondense simulate --seed`` sets for its simulated sites: reproducible and
labelled non-private); the generator is then keyed by (seed, site, round, attempt). A
deployed site daemon (node config ``ledger-path``) then charges the request to its own ledger
or refuses it (:mod:`fedcondense.client.budget_gate`).
Model fits are public and cached per process, so simulated
sites sharing a process do not refit; the families are built once per process
(:func:`site_families`), on the device of the node config's ``device`` (default ``auto``).
"""

from __future__ import annotations

import gc
import logging
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..protocol.condensation.federation import FitCache, answer_init, answer_round
from ..protocol.condensation.site_update import RoundConfig
from ..protocol.condensation.synthetic_set import SyntheticSet
from ..protocol.data.schema import Schema
from ..protocol.families import ModelFamily, create_family
from ..protocol.privacy.dp_mechanism import noise_generator
from ..protocol.privacy.site_policy import SitePolicy, check_randomness
from ..protocol.wire.messages import RoundMessage

LOG = logging.getLogger("fedcondense.site")
_TABLES: dict[tuple[str, str], Any] = {}
_CACHE = FitCache()


def load_site(node_config: Mapping[str, Any]) -> tuple[Schema, Any]:
    """The site's schema and validated table (cached per process)."""
    from ..protocol.data.site_table import load_site_table

    key = (str(node_config["schema-path"]), str(node_config["data-path"]))
    if key not in _TABLES:
        schema = Schema.load(key[0])
        _TABLES[key] = (schema, load_site_table(key[1], schema))
    return _TABLES[key]


@lru_cache(maxsize=8)
def site_families(models: tuple[str, ...], backend: str,
                  device: str = "auto") -> dict[str, ModelFamily]:
    """The round's families, built once per process (they hold no state between fits).
    ``device`` (the site's own choice, node config ``device``, never the coordinator's)
    places the torch backends; library backends run on the CPU whatever it says."""
    out = {m: create_family(m, backend=backend) for m in models}
    if device != "auto":
        out = {m: create_family(m, backend=backend, device=device) if f.uses_torch else f
               for m, f in out.items()}
    return out


def _rng(message: RoundMessage, site: str, policy: SitePolicy) -> np.random.Generator:
    """The site's generator; a coordinator-named seed only where the site's policy allows."""
    check_randomness(message, policy, site)
    seed = message.hyper.get("noise_seed")
    if seed is None:
        return noise_generator(None)[0]
    party = zlib.crc32(site.encode()) * 1_000_003 + message.round_index * 101 + message.attempt
    return noise_generator(int(seed), party=party)[0]


@dataclass(frozen=True)
class CondensationHandler:
    """``handler(message, node_config) -> vector`` for :func:`fedcondense.client.app.make_client_app`."""

    def __call__(self, message: RoundMessage, node_config: Mapping[str, Any]) -> np.ndarray:
        return self.answer(message, node_config)[0]

    def answer(self, message: RoundMessage,
               node_config: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, float]]:
        """The reply vector and the site's own timings (``fit``, ``predict``, ``privacy``;
        empty for ``init``). Timings stay at the site; only a simulation reads them."""
        from ..protocol.condensation.synthetic_set import free_dim
        from ..protocol.errors import PrivacyError
        from .app import SiteFailure
        from .budget_gate import gate

        site = str(node_config["site-id"])
        try:  # the site's own policy first: nothing is read, charged or computed before it
            policy = SitePolicy.from_node_config(node_config)
            rng = _rng(message, site, policy)
        except PrivacyError as exc:
            LOG.error("%s", exc)
            raise SiteFailure(str(exc)) from None
        schema, table = load_site(node_config)
        # The site's own ledger decides next (no-op without ledger-path, i.e. simulations).
        gate(message, node_config, n_records=table.n_rows, free_dim=free_dim(schema))
        if message.kind == "init":
            return answer_init(table, schema, message.noise_std, rng), {}
        h = message.hyper
        synthetic = SyntheticSet.from_arrays(schema, dict(message.arrays))
        families = site_families(tuple(str(m) for m in h["models"]),
                                 str(h.get("backend", "auto")),
                                 str(node_config.get("device", "auto")))
        rc = RoundConfig(int(h["run_seed"]), int(h["round_index"]), int(h["directions"]),
                         float(h["mu"]), float(h["clip_norm"]), str(h["direction_kind"]))
        q = float(h["sample_rate_by_site"][site])
        out = answer_round(table, synthetic, families, rc, q, message.noise_std, rng, _CACHE)
        settle_heap()
        return out


_SETTLED: set[int] = set()


def settle_heap() -> None:
    """Once per process, after its first round: collect, then :func:`gc.freeze` every live
    object (imports, the site table, fitted families, the framework's own state).

    A site process is long-lived and big — a simulated site's Ray actor holds ~390,000
    objects — and CPython's full collections walk all of them; they fired inside the fits and
    cost a simulated Cox fit ~20-30 % more CPU than the same fit in ``condense``. Frozen
    objects are still freed by reference counting; only cycles among them are never
    collected, and the collection just before freezing leaves none behind.
    """
    pid = os.getpid()
    if pid not in _SETTLED:
        gc.collect()
        gc.freeze()
        _SETTLED.add(pid)
