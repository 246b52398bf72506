"""Errors that carry a one-line message for the operator (and an optional hint).

Everything a user can cause raises a HoltError; the CLI prints it as one coloured line and exits
non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HoltError(Exception):
    """A failure the operator can understand and act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


class InvalidInput(HoltError):
    """The user (or a client) supplied something malformed."""


class NotFound(HoltError):
    """An id, instance or key does not exist."""


class AmbiguousId(HoltError):
    """A short id matched more than one record."""

    def __init__(self, short_id: str, candidates: list[str], total: int) -> None:
        shown = candidates[:10]
        details = list(shown)
        if total > len(shown):
            details.append(f"...and {total - len(shown)} more")
        super().__init__(
            f"ambiguous short ID '{short_id}' matches {total} artefacts",
            hint="Use a longer prefix to uniquely identify the artefact.",
            details=details,
        )
        self.candidates = candidates


class AlreadyExists(HoltError):
    """A write-once record was written before."""


class MalformedRecord(HoltError):
    """A record in Redis (possibly written by another client) does not decode."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"malformed record at {key}: {reason}")
        self.key = key
        self.reason = reason


class RedisUnavailable(HoltError):
    """Redis could not be found, started or reached."""
