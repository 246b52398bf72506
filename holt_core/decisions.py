"""Orchestration decisions and the single seam every one of them passes through.

The orchestrator never changes a claim except by carrying out a ``Decision``. Before it does, it asks
the ``DecisionGate`` whether to proceed; a gate that says no leaves the claim exactly as it is, and the
orchestrator re-derives the same decision from Redis when it is asked to advance that claim again.
That is what makes breakpoints and stepping possible, and durable across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class DecisionKind(StrEnum):
    CREATE_CLAIM = "create_claim"
    GRANT_REVIEW = "grant_review"
    GRANT_PARALLEL = "grant_parallel"
    GRANT_EXCLUSIVE = "grant_exclusive"
    QUEUE_GRANT = "queue_grant"
    DORMANT = "dormant"
    START_FEEDBACK = "start_feedback"
    COMPLETE = "complete"
    TERMINATE = "terminate"
    RESUME = "resume"  # after an answer or approval: re-grant the agent that asked, or count its held output


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    claim_id: str
    artefact_id: str
    artefact_type: str
    structural_type: str
    produced_by_role: str
    claim_status: str
    summary: str
    granted_roles: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "claim_id": self.claim_id,
            "artefact_id": self.artefact_id,
            "artefact_type": self.artefact_type,
            "structural_type": self.structural_type,
            "produced_by_role": self.produced_by_role,
            "claim_status": self.claim_status,
            "granted_roles": list(self.granted_roles),
            "summary": self.summary,
            "details": self.details,
        }


class DecisionGate(Protocol):
    async def admit(self, decision: Decision) -> bool:
        """True to carry the decision out now; False to hold it (the claim stays as it is)."""
        ...


class OpenGate:
    """No breakpoints: every decision goes ahead. Costs one await."""

    async def admit(self, decision: Decision) -> bool:
        return True


class _Claimish(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def status(self) -> Any: ...


class _Artefactish(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def structural_type(self) -> Any: ...

    @property
    def produced_by_role(self) -> str: ...


def decision_of(kind: DecisionKind, claim: _Claimish, target: _Artefactish, summary: str,
                granted: tuple[str, ...] = (), **details: Any) -> Decision:
    """The decision ``kind`` about ``claim`` on ``target``: the one way decisions are built."""
    return Decision(
        kind=kind, claim_id=claim.id, artefact_id=target.id, artefact_type=target.type,
        structural_type=target.structural_type.value, produced_by_role=target.produced_by_role,
        claim_status=claim.status.value, summary=summary, granted_roles=granted, details=details,
    )
