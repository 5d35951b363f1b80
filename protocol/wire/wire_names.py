"""Names both sides of the wire agree on outside the round message itself.

The round message (:mod:`fedcondense.protocol.wire.messages`) carries the maths; these are the
framing that the site's ClientApp (:mod:`fedcondense.client.app`) and the coordinator
(:mod:`fedcondense.server`) must spell identically: the record a hello travels in, and the
prefix of the one-line error a site may send instead of a reply.
"""

from __future__ import annotations

ERROR_MARK = "[fedcondense] "
"""Prefix of the one-line error a site sends; the coordinator extracts the text after it."""
HELLO_RECORD = "fc.hello"
"""Name of the config record a hello (and its answer) travels in."""
