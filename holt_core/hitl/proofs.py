"""Proofs of human acts, and what a request counts as once unproven human acts are taken out.

Every human act (answer, amend, approve, reject, bypass, closing a post-review) writes, first in its own Tx, a
proof key ``holt-ops:<operator>:<instance>:act:<request id>:<nonce>`` (keys.Keys.proof) whose value says what was
done. Only that operator's Redis user (and admin) may write under ``holt-ops:<operator>:``, and Redis aborts the
whole script when a key is refused, so a proof exists exactly when the named person's credentials made the act.
The request records the nonce (``Approval.proof``, ``Answer.proof``, ``HitlRequest.decision_proof``).

An agent's Redis user may still write request hashes: ``honour`` is the pure rule every reader applies (the
request store does it on each read), so a decision without its proof counts for nothing and is reported.

The system's closures (expired, cancelled, superseded, approved by policy: anything not decided by a person, and
not a peer agent's answer) are proven the same way: the closing Tx also writes ``hitl:sys:<request id>``
(keys.Keys.hitl_system_proof, ``SystemProof``), a key only the orchestrator's and the operators' Redis users may
write. A closure without a matching one counts as open again. The rule applies once the orchestrator has set
``hitl:sysproofs_from`` (after giving every request closed before the upgrade its proof).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from holt_core.blackboard import Blackboard
from holt_core.hitl.models import Effect, HitlRequest, RequestKind, RequestStatus
from holt_core.hitl.policy import HitlPolicy
from holt_core.identity import SYSTEM_ORCHESTRATOR, SYSTEM_TIMEOUT, operator_of_role
from holt_core.keys import Keys
from holt_core.models import dumps, now_ms
from holt_core.transaction import Tx

Act = Literal["answer", "amend", "approve", "reject", "bypass", "close", "start", "debug"]
SYSTEM_POLICY = "system:policy"


class Proof(BaseModel):
    """The value of a proof key."""

    act: str
    subject: str  # the request id (or goal artefact id / debug command)
    operator: str
    at_ms: int
    digest: str = ""  # what an approval covered
    caller_request_id: str = ""
    impersonated_by: str = ""

    def to_json(self) -> str:
        return dumps(self.model_dump(mode="json"))


class SystemProof(BaseModel):
    """The value of a system proof key: what the system decided about one request. A proof matches only the closure
    it was written for (status, who, when, and the artefacts it wrote), so it cannot be carried onto another
    outcome of the request."""

    subject: str  # the request id
    status: str
    decided_by: str
    decided_ms: int
    rev: int  # the request's rev the closure wrote
    on_expire: str = ""
    answer_artefact_id: str = ""  # an expired question answered with the configured default
    decision_artefact_id: str = ""

    @classmethod
    def of(cls, req: HitlRequest) -> SystemProof:
        return cls(subject=req.id, status=req.status.value, decided_by=req.decided_by, decided_ms=req.decided_ms,
                   rev=req.rev, on_expire=req.on_expire,
                   answer_artefact_id=req.answer.artefact_id if req.answer is not None else "",
                   decision_artefact_id=req.decision_artefact_id)

    def matches(self, req: HitlRequest) -> bool:
        mine = SystemProof.of(req)
        return (self.subject, self.status, self.decided_by, self.decided_ms, self.on_expire, self.answer_artefact_id,
                self.decision_artefact_id) == (mine.subject, mine.status, mine.decided_by, mine.decided_ms,
                                               mine.on_expire, mine.answer_artefact_id, mine.decision_artefact_id)

    def to_json(self) -> str:
        return dumps(self.model_dump(mode="json"))


def needs_system_proof(req: HitlRequest) -> bool:
    """A closed request whose outcome no person's proof (nor a peer agent's answer) accounts for: the system's."""
    if req.is_open:
        return False
    person = operator_of_role(req.decided_by) is not None
    if req.kind == RequestKind.APPROVAL:
        return not (person and req.status in (RequestStatus.APPROVED, RequestStatus.REJECTED,
                                              RequestStatus.BYPASSED))
    if req.kind == RequestKind.POST_REVIEW:
        return not (person and req.status in (RequestStatus.CLOSED, RequestStatus.REJECTED))
    return not (req.status == RequestStatus.ANSWERED and req.answer is not None
                and not req.answer.by.startswith("system:") and req.decided_by == req.answer.by)


def system_proof_keys(keys: Keys, req: HitlRequest) -> list[str]:
    """What a reader fetches, beside ``claimed_proofs``, to check a closed request's system closure."""
    return [] if req.is_open else [keys.hitl_system_proof(req.id), keys.hitl_system_proofs_from]


def proof_keys(keys: Keys, req: HitlRequest) -> list[str]:
    """Every key ``honour`` looks up in ``values`` for this request."""
    return [c.key for c in claimed_proofs(keys, req)] + system_proof_keys(keys, req)


def _system_proven(keys: Keys, req: HitlRequest, values: dict[str, str | None]) -> bool:
    raw = values.get(keys.hitl_system_proof(req.id))
    if not raw:
        return False
    try:
        return SystemProof.model_validate_json(raw).matches(req)
    except (ValidationError, ValueError):
        return False


@dataclass(frozen=True)
class Claimed:
    """One proof a request relies on: who, which act(s), the key, and the digest it must cover."""

    operator: str
    acts: tuple[str, ...]
    key: str
    digest: str = ""


@dataclass
class Honoured:
    request: HitlRequest
    problems: list[str] = field(default_factory=list)

    @property
    def forged(self) -> bool:
        return bool(self.problems)


def _claim(keys: Keys, req: HitlRequest, operator: str | None, nonce: str, acts: tuple[str, ...],
           digest: str = "") -> Claimed:
    # A missing operator or nonce gives a key nobody can have written (the empty operator is not a name).
    return Claimed(operator=operator or "", acts=acts, key=keys.proof(operator or "-", req.id, nonce or "-"),
                   digest=digest)


def claimed_proofs(keys: Keys, req: HitlRequest) -> list[Claimed]:
    """Every proof the stored request relies on (what a reader must fetch before calling ``honour``)."""
    out = [_claim(keys, req, a.operator, a.proof, ("approve",), a.digest) for a in req.approvals]
    decider = operator_of_role(req.decided_by)
    if decider is not None and req.kind == RequestKind.APPROVAL and req.status in (
            RequestStatus.BYPASSED, RequestStatus.REJECTED):
        out.append(_claim(keys, req, decider, req.decision_proof,
                          ("bypass",) if req.status == RequestStatus.BYPASSED else ("reject",)))
    if decider is not None and req.kind == RequestKind.POST_REVIEW and not req.is_open:
        out.append(_claim(keys, req, decider, req.decision_proof, ("close",)))
    if req.answer is not None and (by := operator_of_role(req.answer.by)) is not None:
        out.append(_claim(keys, req, by, req.answer.proof, ("answer", "amend")))
    return out


def _valid(claimed: Claimed, raw: str | None, request_id: str) -> bool:
    if not raw or not claimed.operator:
        return False
    try:
        proof = Proof.model_validate_json(raw)
    except (ValidationError, ValueError):
        return False
    return (proof.act in claimed.acts and proof.subject == request_id and proof.operator == claimed.operator
            and (not claimed.digest or proof.digest == claimed.digest))


def _reopened(req: HitlRequest, **extra: Any) -> HitlRequest:
    return req.model_copy(update={"status": RequestStatus.OPEN, "decided_by": "", "decided_ms": 0,
                                  "decision_request_id": "", "decision_proof": "", "effect": Effect.NONE,
                                  **extra})


def honour(keys: Keys, req: HitlRequest, values: dict[str, str | None], policy: HitlPolicy | None = None
           ) -> Honoured:
    """The request as it counts: human acts without a valid proof (in ``values``: proof key -> stored value)
    are taken out, and a decision that rested on them is open again. ``problems`` says what was taken out.

    With ``policy``, a grant the stored terms alone would allow is also checked against the policy: at least the
    policy's ``min_approvals`` for the risk level, automatic approval only where the level approves
    automatically, and an expiry counting as approval only where the level says so.
    """
    problems: list[str] = []
    valid = {c.key for c in claimed_proofs(keys, req) if _valid(c, values.get(c.key), req.id)}
    proven = [a for a in req.approvals if keys.proof(a.operator or "-", req.id, a.proof or "-") in valid]
    for a in req.approvals:
        if a not in proven:
            problems.append(f"approval by {a.operator} has no proof")
    out = req.model_copy(update={"approvals": proven}) if len(proven) != len(req.approvals) else req
    level = policy.level(req.risk) if policy is not None and req.kind == RequestKind.APPROVAL else None

    if req.kind == RequestKind.APPROVAL:
        decider = operator_of_role(req.decided_by)
        if req.status == RequestStatus.APPROVED:
            needed = max(req.min_approvals, level.min_approvals if level is not None else 1)
            count = len({a.operator for a in proven if a.digest == req.digest})
            if req.decided_by == SYSTEM_POLICY:
                if level is not None and not level.auto_approve:
                    problems.append(f"automatic approval, but risk level {req.risk} does not approve automatically")
                    out = _reopened(out)
            elif decider is None or count < needed:
                problems.append(f"approved by {req.decided_by or 'nobody'} with {count} proven of {needed} "
                                "needed approvals")
                out = _reopened(out)
        elif req.status in (RequestStatus.BYPASSED, RequestStatus.REJECTED) and decider is not None:
            if keys.proof(decider, req.id, req.decision_proof or "-") not in valid:
                problems.append(f"{req.status.value} by {req.decided_by} has no proof")
                out = _reopened(out, post_review_id="", reason="", justification="")
        elif req.status == RequestStatus.BYPASSED:
            problems.append(f"bypassed by {req.decided_by or 'nobody'}, who is not a person")
            out = _reopened(out, post_review_id="")
        elif req.status == RequestStatus.EXPIRED and req.on_expire == "approve" and (
                req.decided_by != SYSTEM_TIMEOUT or (level is not None and level.on_expire != "approve")):
            problems.append(f"expiry counted as approval, but risk level {req.risk} does not allow it")
            out = _reopened(out, on_expire="reject")
    elif req.kind == RequestKind.POST_REVIEW and not req.is_open:
        decider = operator_of_role(req.decided_by)
        if decider is None or keys.proof(decider, req.id, req.decision_proof or "-") not in valid:
            problems.append(f"post-review closed by {req.decided_by or 'nobody'} without proof")
            out = _reopened(out, reason="")
    elif req.kind == RequestKind.QUESTION and req.answer is not None:
        by = operator_of_role(req.answer.by)
        if by is not None and keys.proof(by, req.id, req.answer.proof or "-") not in valid:
            problems.append(f"answer by {req.answer.by} has no proof")
            out = _reopened(out, answer=None, consumed_ms=0)
    if needs_system_proof(out) and values.get(keys.hitl_system_proofs_from) \
            and not _system_proven(keys, out, values):
        problems.append(f"{out.status.value} by {out.decided_by or 'nobody'} without the system's proof")
        out = _reopened(out, reason="", decision_artefact_id="", post_review_id="",
                        **({"answer": None, "consumed_ms": 0} if out.kind == RequestKind.QUESTION else {}))
    return Honoured(request=out, problems=problems)



def proof_tx(keys: Keys, operator: str, act: str, subject: str, *, impersonated_by: str = "") -> Tx:
    """A Tx whose first write is ``operator``'s proof of ``act`` on ``subject``: extend it with the act's own writes
    (debug commands, injected reviews), and Redis refuses the whole write unless the caller is that operator."""
    nonce = secrets.token_hex(8)
    proof = Proof(act=act, subject=subject, operator=operator, at_ms=now_ms(), impersonated_by=impersonated_by)
    return Tx().set(keys.proof(operator, subject or "-", nonce), proof.to_json())


class ForgeryReporter:
    """``RequestStore(on_forgery=...)`` for the orchestrator: each forged version of a request is reported once,
    as an error log line and an audit record by system:orchestrator (the forgery itself is ignored)."""

    def __init__(self, bb: Blackboard, log: Any) -> None:
        self.bb = bb
        self.log = log
        self._seen: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, req: HitlRequest, problems: list[str]) -> None:
        if (req.id, req.rev) in self._seen:
            return
        self._seen.add((req.id, req.rev))
        self.log.error("forged_decision_ignored", request_id=req.id, rev=req.rev, problems=problems)
        task = asyncio.ensure_future(self.bb.audit.append(
            operator=SYSTEM_ORCHESTRATOR, action="forged_decision_ignored", subject=req.id,
            details={"rev": req.rev, "status": req.status.value, "problems": problems}))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
