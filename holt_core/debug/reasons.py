"""Reasons a claim is not moving, and the registry other areas add theirs to (``holt_core.debug.explain``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from holt_core.blackboard import Blackboard
from holt_core.debug.store import DebugState
from holt_core.models import Artefact, Claim


class Reason(BaseModel):
    kind: str
    message: str
    blocking: bool = True  # False: informational (the claim is moving, or waits on nothing in particular)
    waiting_for: list[str] = []
    details: dict[str, Any] = {}


@dataclass
class ClaimContext:
    """What a reason provider is given (claim is None when the artefact has no claim)."""

    bb: Blackboard
    artefact: Artefact | None
    claim: Claim | None
    claim_raw: dict[str, str] = field(default_factory=dict)
    debug: DebugState = field(default_factory=DebugState)


ReasonProvider = Callable[[ClaimContext], Awaitable[list[Reason]]]
REASON_PROVIDERS: list[ReasonProvider] = []


def register_reason_provider(provider: ReasonProvider) -> None:
    """Add a source of reasons (e.g. open questions and approvals); called once at import by its owner."""
    if provider not in REASON_PROVIDERS:
        REASON_PROVIDERS.append(provider)
