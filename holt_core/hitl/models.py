"""The records of the human-in-the-loop engine: requests, their hops, approvals and outcomes.

A request is one Redis hash: ``rev`` (the compare-and-set counter), ``kind`` and ``status`` as plain
fields a human can read with HGETALL, and ``record``, the whole request as JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from holt_core.errors import MalformedRecord
from holt_core.hitl.kinds import Effect as Effect
from holt_core.hitl.kinds import GateSource as GateSource
from holt_core.hitl.kinds import RequestKind as RequestKind
from holt_core.hitl.kinds import RequestStatus as RequestStatus
from holt_core.record_basics import dumps


class Hop(BaseModel):
    """One step of a question's route: who was asked, when, and how it ended."""

    model_config = ConfigDict(extra="ignore")

    to: str  # "human" or "role:<name>"
    at_ms: int
    claim_id: str = ""  # the direct-assignment claim of a peer hop
    outcome: str = ""  # "", answered, cannot_answer, timeout, failed, superseded
    note: str = ""


class LadderStep(BaseModel):
    model_config = ConfigDict(extra="ignore")

    after_s: float
    to: list[str] = Field(default_factory=list)


class Approval(BaseModel):
    model_config = ConfigDict(extra="ignore")

    operator: str
    at_ms: int
    digest: str
    justification: str = ""
    request_id: str = ""
    artefact_id: str = ""
    proof: str = ""  # nonce of the approver's proof key (holt_core/hitl/proofs.py)


class Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    by: str  # "human:<op>", an agent role, or "system:timeout"
    at_ms: int
    request_id: str = ""
    artefact_id: str = ""
    logical_id: str = ""
    flagged: bool = False  # a default answer given by the timeout, not by a person
    amended: int = 0
    proof: str = ""  # nonce of the person's proof key ("" for an agent's or the timeout's answer)


class HitlRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    kind: RequestKind
    status: RequestStatus = RequestStatus.OPEN
    rev: int = 1
    created_ms: int
    updated_ms: int = 0
    # who asked / what is gated
    claim_id: str = ""
    role: str = ""  # the asking (or gated) agent role
    workflow_id: str = ""  # the root goal artefact
    started_by: str = ""  # the operator who started that workflow ("" when unknown)
    artefact_id: str = ""  # the Question / the gated artefact / the held plan
    logical_id: str = ""  # of the gated artefact: a newer version supersedes the request
    target_artefact_id: str = ""  # the asker's claim target
    producer: str = ""  # produced_by_role of the gated artefact
    # questions
    text: str = ""
    ask: str = "human"
    assignee: str = "human"  # "human" or "role:<name>"
    hops: list[Hop] = Field(default_factory=list)
    answer: Answer | None = None
    consumed_ms: int = 0  # the asker's re-run read the answer (no amend after this)
    # approvals
    source: GateSource | None = None
    action: str = ""
    target: str = ""
    plan: Any = None
    risk: str = ""
    digest: str = ""
    min_approvals: int = 1
    approver_roles: list[str] = Field(default_factory=list)
    require_justification: bool = False
    approvals: list[Approval] = Field(default_factory=list)
    post_review_id: str = ""  # a bypass: the post-review item it opened
    review_of: str = ""  # a post-review item: the bypassed request
    bypassed_by: str = ""  # a post-review item: who bypassed (they may not close it)
    # deadlines (a snapshot of the policy at creation, so a restart or a config edit cannot change them)
    deadline_ms: int = 0  # expiry (0: never)
    escalation_level: int = 0
    ladder: list[LadderStep] = Field(default_factory=list)
    expire_after_s: float = 0.0
    on_expire: str = ""  # fail | default | approve | reject
    default_answer: str = ""
    peer_timeout_s: float = 0.0
    answerer_roles: list[str] = Field(default_factory=list)
    scheduled: list[str] = Field(default_factory=list)  # members of the deadlines ZSET this request owns
    # the outcome
    decided_by: str = ""
    decided_ms: int = 0
    reason: str = ""
    justification: str = ""
    decision_request_id: str = ""  # the caller's request id of the deciding act (retries return this result)
    decision_artefact_id: str = ""
    decision_proof: str = ""  # nonce of the deciding person's proof key (reject, bypass, closing a post-review)
    effect: Effect = Effect.NONE

    def to_hash(self) -> dict[str, str]:
        return {"rev": str(self.rev), "kind": self.kind.value, "status": self.status.value,
                "record": dumps(self.model_dump(mode="json"))}

    @classmethod
    def from_hash(cls, raw: dict[str, str], key: str = "hitl request") -> HitlRequest:
        try:
            data = json.loads(raw["record"])
            request = cls.model_validate(data)
        except (KeyError, ValueError, ValidationError) as exc:
            raise MalformedRecord(key, f"not a hitl request: {str(exc)[:200]}") from None
        # The plain fields are what guards compare; they win over the JSON copy.
        return request.model_copy(update={"rev": int(raw.get("rev") or request.rev)})

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def current_hop(self) -> Hop | None:
        return self.hops[-1] if self.hops else None

    @property
    def for_humans(self) -> bool:
        return self.assignee == "human"

    def distinct_approvers(self) -> list[str]:
        return list(dict.fromkeys(a.operator for a in self.approvals if a.digest == self.digest))


def payload_digest(payload: str) -> str:
    """sha256 of the exact payload bytes an approval covers."""
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def plan_digest(action: str, target: str, plan: Any, payload: str) -> str:
    """sha256 over a tool-declared action: what it does, to what, how, and the artefact it came with."""
    body = json.dumps({"action": action, "target": target, "plan": plan, "payload": payload},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


class ArtefactOfRequest(BaseModel):
    """Also on ``hitl:events``: an artefact the HITL engine owns (a question, answer, decision or held plan).

    Published in the same write as the artefact and before its artefact event, so the orchestrator knows
    the artefact is not ordinary work from memory when the artefact arrives (one subscription, in order).
    """

    artefact_id: str
    request_id: str

    def to_json(self) -> str:
        return dumps(self.model_dump(mode="json"))


class RequestChange(BaseModel):
    """What the ``hitl:events`` channel carries: enough to decide whether to re-read the request."""

    request_id: str
    kind: RequestKind
    status: RequestStatus
    change: str  # created, answered, approval_added, approved, rejected, expired, escalated, routed, ...
    claim_id: str = ""
    rev: int = 0

    def to_json(self) -> str:
        return dumps(self.model_dump(mode="json"))
