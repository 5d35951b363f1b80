"""Test double: a client mod that makes one site crash at a chosen SecAgg+ stage.

Only in-process runs (``backend="local"``) use it: Ray's site processes would have to import
it from the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StageFault:
    """Client mod: site ``site_id`` raises when it receives SecAgg+ ``stage`` in ``round``.

    ``stage`` is one of ``setup``, ``share_keys``, ``collect_masked_vectors``, ``unmask``.
    """

    site_id: str
    round_index: int
    stage: str

    def __call__(self, msg: Any, ctxt: Any, call_next: Any) -> Any:
        from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

        site = ctxt.node_config.get("site-id")
        rec = msg.content.config_records.get(RECORD_KEY_CONFIGS) if msg.has_content() else None
        stage = rec.get(Key.STAGE) if rec is not None else None
        if site == self.site_id and msg.metadata.group_id == str(self.round_index) \
                and stage == self.stage:
            raise ConnectionError(f"injected loss of {site} at stage {stage}")
        return call_next(msg, ctxt)
