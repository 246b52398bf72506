"""Held decisions: a decision the gate did not let through, stored with everything needed to judge it.

A held decision is keyed by its *subject*: the claim it would change, or, for decisions that are driven by
an artefact rather than by a claim (creating a claim; feedback from an injected review), that artefact.
It stays in Redis until it is carried out (``step``/``continue``), dropped (``skip``) or its claim is
terminated. ``release`` records an operator's release until the orchestrator carries the decision out, so
a release sent while the orchestrator restarts is still carried out.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from holt_core.decisions import Decision, DecisionKind
from holt_core.models import Artefact, feedback_excerpt

# Detail keys the orchestrator sets on decisions whose re-derivation is not "advance the claim".
DETAIL_HUMAN_REVIEW = "human_review_id"
DETAIL_FROM_QUEUE = "from_queue"
# Decisions after which a claim has no next decision of its own to hold.
CLOSING_KINDS = frozenset({DecisionKind.COMPLETE, DecisionKind.TERMINATE, DecisionKind.DORMANT,
                           DecisionKind.START_FEEDBACK})


class HoldReason(StrEnum):
    BREAKPOINT = "breakpoint"
    FULL_CONTROL = "full_control"
    STEP = "step"


class Release(StrEnum):
    STEP = "step"
    CONTINUE = "continue"


class Redrive(StrEnum):
    """How the orchestrator re-derives the decision once it is released."""

    CLAIM = "claim"  # advance the claim
    ARTEFACT = "artefact"  # replay the artefact (claim creation, injected review)
    QUEUE = "queue"  # drain a controller's grant queue


class DecisionView(BaseModel):
    """A ``Decision`` as stored and shown."""

    model_config = ConfigDict(extra="ignore")

    kind: DecisionKind
    claim_id: str
    artefact_id: str
    artefact_type: str
    structural_type: str
    produced_by_role: str
    claim_status: str
    summary: str
    granted_roles: list[str] = []
    details: dict[str, Any] = {}

    @classmethod
    def of(cls, decision: Decision) -> DecisionView:
        return cls.model_validate(decision.describe())


class ArtefactView(BaseModel):
    id: str
    type: str
    structural_type: str
    produced_by_role: str
    version: int
    payload_excerpt: str

    @classmethod
    def of(cls, artefact: Artefact) -> ArtefactView:
        return cls(id=artefact.id, type=artefact.type, structural_type=artefact.structural_type.value,
                   produced_by_role=artefact.produced_by_role, version=artefact.version,
                   payload_excerpt=feedback_excerpt(artefact.payload, 400))


class HeldDecision(BaseModel):
    subject: str
    hold_id: str
    decision: DecisionView
    reason: HoldReason
    breakpoint_id: str | None = None
    held_since_ms: int
    artefact: ArtefactView | None = None
    bids: dict[str, str] = {}
    redrive: Redrive
    redrive_id: str
    release: Release | None = None
    released_by: str | None = None
    released_at_ms: int | None = None
    release_proof: str = ""  # the nonce of the releasing operator's proof (holt_core/debug/proven.py)

    def to_json(self) -> str:
        return self.model_dump_json()

    def explain(self) -> str:
        why = {
            HoldReason.BREAKPOINT: f"breakpoint {self.breakpoint_id}",
            HoldReason.FULL_CONTROL: "the instance is under full control",
            HoldReason.STEP: "the operator is stepping this claim",
        }[self.reason]
        return f"{self.decision.summary} ({self.decision.kind.value}), held by {why}"


def subject_of(decision: Decision) -> str:
    review = decision.details.get(DETAIL_HUMAN_REVIEW)
    if isinstance(review, str):
        return review
    if decision.kind == DecisionKind.CREATE_CLAIM:
        return decision.artefact_id
    return decision.claim_id


def redrive_of(decision: Decision) -> tuple[Redrive, str]:
    review = decision.details.get(DETAIL_HUMAN_REVIEW)
    if isinstance(review, str):
        return Redrive.ARTEFACT, review
    if decision.kind == DecisionKind.CREATE_CLAIM:
        return Redrive.ARTEFACT, decision.artefact_id
    role = decision.details.get(DETAIL_FROM_QUEUE)
    if isinstance(role, str):
        return Redrive.QUEUE, role
    return Redrive.CLAIM, decision.claim_id


def signature(decision: Decision | DecisionView) -> str:
    """What makes two derivations "the same decision" (a skipped one stays dropped while this holds)."""
    return json.dumps([str(decision.kind), sorted(decision.granted_roles)], separators=(",", ":"))
