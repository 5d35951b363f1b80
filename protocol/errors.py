"""User-facing error type.

Every error a person can cause (bad file, bad option, exhausted budget) is raised as a
:class:`FedcondenseError` whose message is one line naming the file, row/column and the fix.
The CLI prints it without a traceback and exits non-zero.
"""

from __future__ import annotations


class FedcondenseError(Exception):
    """An error caused by input or configuration, with a one-line, actionable message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class SchemaError(FedcondenseError):
    """The consortium schema file is malformed or inconsistent."""


class DataError(FedcondenseError):
    """A site table does not conform to the consortium schema."""


class PrivacyError(FedcondenseError):
    """Privacy parameters would break the guarantee, or a budget would be exceeded."""
