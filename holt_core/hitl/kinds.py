"""The kinds and states of a human-in-the-loop request, without pydantic (``hitl.models`` re-exports them): the
light read of open requests (``hitl.request_record``) uses them without loading the request models."""

from __future__ import annotations

from enum import StrEnum


class RequestKind(StrEnum):
    QUESTION = "question"
    APPROVAL = "approval"
    POST_REVIEW = "post_review"  # opened by a bypass; another person must close it


class RequestStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    BYPASSED = "bypassed"
    SUPERSEDED = "superseded"
    CLOSED = "closed"  # a post-review item someone reviewed

    @property
    def is_open(self) -> bool:
        return self == RequestStatus.OPEN


class GateSource(StrEnum):
    GRANT = "grant"  # (a) before the orchestrator grants a claim on a matching artefact
    TOOL = "tool"  # (b) a tool declared an action in its output


class Effect(StrEnum):
    """What the orchestrator still has to do about a decided request."""

    NONE = "none"  # nothing (open, or an effect that needs no claim change)
    PENDING = "pending"
    DONE = "done"
