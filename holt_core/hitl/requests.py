"""The request store: the ONE module that changes a question, approval or post-review request.

Every change is a pure step (old request -> new request, extra writes, audit record) run as one
compare-and-set on the request's ``rev`` together with its audit record (``bb.audit.commit``). When two
writers race, the loser re-reads and re-runs its step on the new state, which then tells it who won.
A refused human attempt raises ``Refused`` after its own audit record.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from holt_core.blackboard import Blackboard
from holt_core.errors import HoltError, InvalidInput, NotFound
from holt_core.hitl.models import (
    Answer,
    Approval,
    ArtefactOfRequest,
    Effect,
    GateSource,
    HitlRequest,
    Hop,
    LadderStep,
    RequestChange,
    RequestKind,
    RequestStatus,
    payload_digest,
)
from holt_core.hitl.policy import HitlPolicy, QuestionPolicy, RiskPolicy
from holt_core.hitl.proofs import Proof, SystemProof, honour, needs_system_proof, proof_keys
from holt_core.identity import SYSTEM_TIMEOUT, human_role, is_human_role, operator_of_role
from holt_core.keys import escape_glob
from holt_core.models import Artefact, StructuralType, dumps, new_id, now_ms
from holt_core.transaction import Tx

if TYPE_CHECKING:
    from holt_core.audit import AuditRecord

SYSTEM_POLICY = "system:policy"
SYSTEM_ORCHESTRATOR = "system:orchestrator"
_MAX_ATTEMPTS = 100
_LINEAGE_LEVELS = 64

ANSWER_TYPE = "Answer"
DECISION_TYPE = "ApprovalDecision"
EXPIRY_FAILURE_TYPE = "QuestionExpired"


class Refused(HoltError):
    """A human act the rules do not allow (it is on the audit trail all the same)."""


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Step:
    """What one transition does, computed from the request as it is now."""

    new: HitlRequest
    action: str  # the audit action
    operator: str
    details: dict[str, Any] = field(default_factory=dict)
    tx: Tx = field(default_factory=Tx)
    notify: str = ""  # request | escalation | expiry | decision: queued for webhooks in the same step
    notify_text: str = ""
    change: str = ""
    proof: tuple[str, Proof] | None = None  # (nonce, value) of a person's act: written first in the same Tx
    system: bool = False  # a closure by the system: its proof (hitl:sys:<id>, proofs.SystemProof) in the same Tx


@dataclass
class Unchanged:
    """The step finds the work already done (a retry): return the stored request."""

    request: HitlRequest


@dataclass
class Denied:
    """A refusal; ``audit`` when it was a person's attempt that belongs on the record."""

    message: str
    hint: str | None = None
    operator: str = ""
    audit: bool = True
    agent: bool = False  # ``operator`` is an agent role, not a person


StepFn = Callable[[HitlRequest], "Step | Unchanged | Denied"]
ForgeryFn = Callable[[HitlRequest, list[str]], None]


@dataclass
class Requester:
    """Where a request comes from: the claim, its agent, its target and the workflow it belongs to."""

    claim_id: str
    role: str
    target: Artefact
    workflow_id: str = ""
    started_by: str = ""


class RequestStore:
    """Reads return requests as they count (holt_core/hitl/proofs.py): a person's act without its proof is
    taken out, and ``on_forgery`` hears about it. ``impersonated_by`` (set for an admin's ``--as``) is recorded
    in every proof and audit record this store writes for a person."""

    def __init__(self, bb: Blackboard, policy: HitlPolicy, *, on_forgery: ForgeryFn | None = None) -> None:
        self.bb = bb
        self.keys = bb.keys
        self.policy = policy
        self.on_forgery = on_forgery
        self.impersonated_by = ""

    # ================================================================== reading

    async def get(self, request_id: str) -> HitlRequest:
        raw = await self.bb.redis.hgetall(self.keys.hitl_request(request_id))
        if not raw:
            raise NotFound(f"request '{request_id}' not found", hint="holt questions / holt pending list open ones")
        req = HitlRequest.from_hash({str(k): str(v) for k, v in raw.items()}, self.keys.hitl_request(request_id))
        return (await self._honour([req]))[0]

    async def get_many(self, ids: Sequence[str]) -> list[HitlRequest]:
        rows = await self.bb.hgetall_many([self.keys.hitl_request(i) for i in ids])
        out = []
        for request_id, raw in zip(ids, rows, strict=True):
            if raw:
                try:
                    out.append(HitlRequest.from_hash(raw, self.keys.hitl_request(request_id)))
                except HoltError:
                    continue
        return await self._honour(out)

    async def _honour(self, reqs: list[HitlRequest]) -> list[HitlRequest]:
        """Each request as it counts: human acts and system closures without a valid proof are taken out (one MGET
        for all)."""
        keys = list(dict.fromkeys(k for r in reqs for k in proof_keys(self.keys, r)))
        if not keys:
            return reqs
        values = await self.bb.redis.mget(keys)
        found = {k: (str(v) if v is not None else None) for k, v in zip(keys, values, strict=True)}
        out = []
        for req in reqs:
            honoured = honour(self.keys, req, found, self.policy)
            if honoured.forged and self.on_forgery is not None:
                self.on_forgery(req, honoured.problems)
            out.append(honoured.request)
        return out

    def _proof(self, operator: str, act: str, subject: str, *, digest: str = "",
               caller_request_id: str = "") -> tuple[str, Proof]:
        return secrets.token_hex(8), Proof(act=act, subject=subject, operator=operator, at_ms=now_ms(), digest=digest,
                                           caller_request_id=caller_request_id,
                                           impersonated_by=self.impersonated_by)

    async def start_system_proofs(self) -> int:
        """Once per instance (the orchestrator calls it on start): every request the system closed before system
        proofs existed gets its proof, then ``hitl:sysproofs_from`` is set and from then on every system closure
        needs one. Returns how many were proven (0 when already done)."""
        if await self.bb.redis.exists(self.keys.hitl_system_proofs_from):
            return 0
        head = self.keys.hitl_request("")
        ids = sorted({str(k)[len(head):] async for k in self.bb.redis.scan_iter(
            match=f"{escape_glob(head)}*", count=1000)})
        proven = 0
        for start in range(0, len(ids), 500):
            batch = ids[start:start + 500]
            rows = await self.bb.hgetall_many([self.keys.hitl_request(i) for i in batch])
            closed: list[HitlRequest] = []
            for request_id, raw in zip(batch, rows, strict=True):
                try:
                    req = HitlRequest.from_hash(raw, self.keys.hitl_request(request_id)) if raw else None
                except HoltError:
                    continue
                if req is not None and needs_system_proof(req):
                    closed.append(req)
            if closed:  # one round trip per batch, not one per request
                async with self.bb.redis.pipeline(transaction=False) as pipe:
                    for req in closed:
                        pipe.set(self.keys.hitl_system_proof(req.id), SystemProof.of(req).to_json(), nx=True)
                    proven += sum(bool(done) for done in await pipe.execute())
        if await self.bb.redis.set(self.keys.hitl_system_proofs_from, str(now_ms()), nx=True):
            await self.bb.audit.append(operator=SYSTEM_ORCHESTRATOR, action="system_proofs_started",
                                       details={"closed_before": proven})
        return proven

    async def open_requests(self) -> list[HitlRequest]:
        ids = [str(i) for i in await self.bb.redis.zrange(self.keys.hitl_open, 0, -1)]
        return [r for r in await self.get_many(ids) if r.is_open]

    async def active_requests(self) -> list[HitlRequest]:
        ids = [str(i) for i in await self.bb.redis.zrange(self.keys.hitl_active, 0, -1)]
        return await self.get_many(ids)

    async def resolve_id(self, text: str) -> str:
        """A full request id or a unique prefix of at least 6 characters."""
        candidate = text.strip().lower()
        if await self.bb.redis.exists(self.keys.hitl_request(candidate)):
            return candidate
        if len(candidate) < 6:
            raise NotFound(f"request '{text}' not found", hint="use the id shown by holt questions / holt pending")
        head = self.keys.hitl_request("")
        matches = sorted({str(k)[len(head):] async for k in self.bb.redis.scan_iter(
            match=f"{escape_glob(head)}{escape_glob(candidate)}*", count=1000)})
        if not matches:
            raise NotFound(f"request '{text}' not found", hint="use the id shown by holt questions / holt pending")
        if len(matches) > 1:
            raise InvalidInput(f"ambiguous request id '{text}' matches {len(matches)} requests",
                               details=matches[:10], hint="use a longer prefix")
        return matches[0]

    async def request_for_artefact(self, artefact_id: str) -> str | None:
        value = await self.bb.redis.hget(self.keys.hitl_artefacts, artefact_id)
        return str(value) if value else None

    async def lineage(self, artefact: Artefact) -> tuple[str, str]:
        """(root goal id, the operator who started it or "") by walking first sources up."""
        current = artefact
        for _ in range(_LINEAGE_LEVELS):
            if not current.source_artefacts:
                break
            parent = (await self.bb.get_artefacts([current.source_artefacts[0]]))[0]
            if parent is None:
                break
            current = parent
        starter = await self.bb.redis.get(self.keys.hitl_starter(current.id))
        return current.id, str(starter or "")

    async def requester(self, claim_id: str, role: str, target: Artefact) -> Requester:
        root, starter = await self.lineage(target)
        return Requester(claim_id=claim_id, role=role, target=target, workflow_id=root, started_by=starter)

    # ================================================================== the transition engine

    def _base_tx(self, old: HitlRequest | None, new: HitlRequest) -> Tx:
        key = self.keys.hitl_request(new.id)
        tx = Tx()
        if old is None:
            tx.require_absent(key)
        else:
            tx.require_field(key, "rev", str(old.rev))
        tx.hset(key, new.to_hash())
        if new.is_open:
            tx.zadd(self.keys.hitl_open, new.created_ms, new.id)
        else:
            tx.zrem(self.keys.hitl_open, new.id)
        if new.is_open or new.effect == Effect.PENDING:
            tx.zadd(self.keys.hitl_active, new.created_ms, new.id)
        else:
            tx.zrem(self.keys.hitl_active, new.id)
        return tx

    def _finish(self, tx: Tx, step: Step) -> None:
        if step.notify:
            tx.xadd(self.keys.hitl_outbox, {"event": step.notify, "request_id": step.new.id,
                                            "kind": step.new.kind.value, "risk": step.new.risk,
                                            "text": step.notify_text or step.new.text or step.new.action,
                                            "at_ms": str(now_ms())})
        change = RequestChange(request_id=step.new.id, kind=step.new.kind, status=step.new.status,
                               change=step.change or step.action, claim_id=step.new.claim_id, rev=step.new.rev)
        tx.publish(self.keys.hitl_events, change.to_json())

    async def _commit(self, old: HitlRequest | None, step: Step) -> AuditRecord:
        new = step.new.model_copy(update={"rev": (old.rev + 1) if old else 1, "updated_ms": now_ms()})
        step.new = new
        tx = Tx()
        if step.proof is not None:
            # First: Redis refuses the whole script when this key is not the caller's to write.
            nonce, proof = step.proof
            tx.set(self.keys.proof(proof.operator, proof.subject, nonce), proof.to_json())
        tx.extend(self._base_tx(old, new)).extend(step.tx)
        if step.system and not new.is_open:
            tx.set(self.keys.hitl_system_proof(new.id), SystemProof.of(new).to_json())
        self._finish(tx, step)
        details = {"request_id": new.id, "kind": new.kind.value, "status": new.status.value, **step.details}
        if step.proof is not None and self.impersonated_by:
            details["impersonated_by"] = self.impersonated_by
        result, record = await self.bb.audit.commit(tx, operator=step.operator, action=step.action,
                                                    subject=new.id, details=details)
        if not result.ok or record is None:
            raise _Conflict()
        return record

    async def transition(self, request_id: str, step_fn: StepFn) -> HitlRequest:
        """Run ``step_fn`` on the current request until its compare-and-set wins (or it refuses)."""
        for _ in range(_MAX_ATTEMPTS):
            old = await self.get(request_id)
            outcome = step_fn(old)
            if isinstance(outcome, Unchanged):
                return outcome.request
            if isinstance(outcome, Denied):
                if outcome.audit:
                    actor = outcome.operator if outcome.agent or not outcome.operator or ":" in outcome.operator \
                        else human_role(outcome.operator)
                    details: dict[str, Any] = {"reason": outcome.message}
                    if self.impersonated_by and not outcome.agent:
                        details["impersonated_by"] = self.impersonated_by
                    await self.bb.audit.append(operator=actor or "unknown", action="refused",
                                               subject=request_id, details=details)
                raise Refused(outcome.message, hint=outcome.hint)
            try:
                await self._commit(old, outcome)
            except _Conflict:
                continue
            return outcome.new
        raise HoltError(f"request {request_id} is changing too fast; try again")

    async def _create(self, step: Step, dedupe: str | None = None) -> HitlRequest:
        """A new request (idempotent on ``dedupe``: a second creation returns the first request)."""
        if step.new.claim_id:
            step.tx.sadd(self.keys.hitl_claim(step.new.claim_id), step.new.id)
        if dedupe is not None:
            step.tx = Tx().require_absent(self.keys.hitl_dedupe(dedupe)).set(
                self.keys.hitl_dedupe(dedupe), step.new.id).extend(step.tx)
        try:
            await self._commit(None, step)
        except _Conflict:
            if dedupe is not None:
                existing = await self.bb.redis.get(self.keys.hitl_dedupe(dedupe))
                if existing:
                    return await self.get(str(existing))
            raise HoltError("could not create the request (a concurrent write won); try again") from None
        return step.new

    # ================================================================== helpers for steps

    def _schedule(self, tx: Tx, req: HitlRequest, items: list[tuple[str, int]]) -> list[str]:
        members = []
        for what, due in items:
            member = f"{req.id}|{what}"
            tx.zadd(self.keys.hitl_deadlines, due, member)
            members.append(member)
        return members

    def _unschedule(self, tx: Tx, req: HitlRequest) -> None:
        for member in req.scheduled:
            tx.zrem(self.keys.hitl_deadlines, member)

    def _human_clock(self, tx: Tx, req: HitlRequest, start_ms: int) -> tuple[list[str], int]:
        """Escalation steps and expiry, counted from ``start_ms`` (when a human became responsible)."""
        items = [(f"esc:{i}", start_ms + int(step.after_s * 1000)) for i, step in enumerate(req.ladder)]
        deadline = 0
        if req.expire_after_s:
            deadline = start_ms + int(req.expire_after_s * 1000)
            items.append(("expire", deadline))
        return self._schedule(tx, req, items), deadline

    def _artefact(self, tx: Tx, request_id: str, artefact: Artefact, *, thread: bool = False) -> Artefact:
        artefact, atx = self.bb.artefact_tx(artefact, add_to_thread=thread)
        self._own(tx, artefact.id, request_id)
        tx.extend(atx)
        return artefact

    def _own(self, tx: Tx, artefact_id: str, request_id: str) -> None:
        """Register an artefact as the HITL engine's, ahead of its artefact event in the same write: the
        orchestrator then knows it is ours when it arrives, without a read per artefact."""
        tx.hset(self.keys.hitl_artefacts, {artefact_id: request_id})
        tx.publish(self.keys.hitl_events, ArtefactOfRequest(artefact_id=artefact_id, request_id=request_id).to_json())

    def _decision_artefact(self, tx: Tx, req: HitlRequest, outcome: str, by_role: str,
                           **fields: Any) -> Artefact:
        ident = new_id()
        body = {"request_id": req.id, "outcome": outcome, "action": req.action, "target": req.target,
                "digest": req.digest, **fields}
        art = Artefact(id=ident, logical_id=ident, version=1, structural_type=StructuralType.ANSWER,
                       type=DECISION_TYPE, payload=dumps(body), source_artefacts=[req.artefact_id],
                       produced_by_role=by_role)
        return self._artefact(tx, req.id, art)

    @staticmethod
    def _ladder(steps: Sequence[Any]) -> list[LadderStep]:
        return [LadderStep(after_s=s.after, to=list(s.to)) for s in steps]

    # ================================================================== questions

    async def ask(self, requester: Requester, question: Artefact, *, ask: str = "human",
                  route: list[str] | None = None) -> HitlRequest:
        """Write the asker's Question artefact and its request in one step.

        ``route`` is the chain of agents to try before a human (from ``ask``); empty means a human first.
        """
        qp: QuestionPolicy = self.policy.questions
        now = now_ms()
        req = HitlRequest(
            id=new_id(), kind=RequestKind.QUESTION, created_ms=now, claim_id=requester.claim_id,
            role=requester.role, workflow_id=requester.workflow_id, started_by=requester.started_by,
            artefact_id=question.id, target_artefact_id=requester.target.id, text=question.payload, ask=ask,
            ladder=self._ladder(qp.escalate_after), expire_after_s=qp.expire_after or 0.0,
            on_expire="default" if qp.default_answer is not None else "fail",
            default_answer=qp.default_answer or "", peer_timeout_s=qp.peer_timeout,
            answerer_roles=list(qp.answerers), effect=Effect.NONE,
        )
        tx = Tx()
        self._artefact(tx, req.id, question, thread=True)
        route = list(route or [])
        if route:
            req.assignee = f"role:{route[0]}"
            req.hops = [Hop(to=req.assignee, at_ms=now, note=f"asked {ask}")]
            req.scheduled = self._schedule(tx, req, [("peer:0", now + int(qp.peer_timeout * 1000))])
            req.reason = dumps(route[1:])  # the rest of the chain, used by escalation
        else:
            req.hops = [Hop(to="human", at_ms=now, note=f"asked {ask}")]
            req.scheduled, req.deadline_ms = self._human_clock(tx, req, now)
        step = Step(new=req, action="question_asked", operator=requester.role, tx=tx,
                    details={"claim_id": req.claim_id, "question_artefact_id": question.id, "ask": ask,
                             "assignee": req.assignee},
                    notify="request" if req.for_humans else "",
                    notify_text=f"Question from {requester.role}: {question.payload}", change="created")
        return await self._create(step, dedupe=f"question:{question.id}")

    def _may_answer(self, req: HitlRequest, operator: str) -> str | None:
        if req.answerer_roles:
            roles = self.policy.roles_of(operator) | set()
            allowed = set(req.answerer_roles)
            for i in range(req.escalation_level):
                if i < len(req.ladder):
                    allowed |= set(req.ladder[i].to)
            if not roles & allowed:
                return f"{operator} may not answer this question (needs one of the roles {sorted(allowed)})"
        return None

    async def answer(self, request_id: str, text: str, *, by: str, caller_request_id: str = "",
                     agent: bool = False) -> HitlRequest:
        """Answer a question: an Answer artefact (sources start with the question), the asker resumes.

        ``by`` is an operator name (``agent`` False) or the answering agent's role.
        """
        if not text.strip():
            raise InvalidInput("the answer is empty")
        by_role = by if agent else human_role(by)

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if req.kind != RequestKind.QUESTION:
                return Denied(f"{req.id} is not a question (it is a {req.kind.value} request)",
                              hint="use holt approve / holt reject", audit=False)
            if req.answer is not None and caller_request_id and req.answer.request_id == caller_request_id:
                if req.answer.text == text and req.answer.by == by_role:
                    return Unchanged(req)
                return Denied(f"request id {caller_request_id} was already used for a different answer",
                              operator=by, agent=agent)
            if not req.is_open:
                if req.answer is not None:
                    return Denied(f"already answered by {req.answer.by} at {when(req.answer.at_ms)}",
                                  hint=("use holt answer --amend to change it before the asker reads it"
                                        if not req.consumed_ms and is_human_role(req.answer.by) else None),
                                  operator=by, agent=agent)
                return Denied(f"question {req.id} is {req.status.value} (by {req.decided_by or 'nobody'} at "
                              f"{when(req.decided_ms or req.updated_ms)})", operator=by, agent=agent)
            if agent:
                if req.assignee != f"role:{by}":
                    return Denied(f"agent {by} is not the one asked (the question is with {req.assignee})",
                                  operator=by, agent=True)
            else:
                problem = self._may_answer(req, by)
                if problem:
                    return Denied(problem, operator=by)
            now = now_ms()
            tx = Tx()
            art = self._artefact(tx, req.id, Artefact(
                id=(aid := new_id()), logical_id=aid, version=1, structural_type=StructuralType.ANSWER,
                type=ANSWER_TYPE, payload=text, source_artefacts=[req.artefact_id, req.target_artefact_id],
                produced_by_role=by_role), thread=True)
            self._unschedule(tx, req)
            hops = list(req.hops)
            if hops and not hops[-1].outcome:
                hops[-1] = hops[-1].model_copy(update={"outcome": "answered" if hops[-1].to in (
                    "human", f"role:{by}") else "superseded"})
            proof = None if agent else self._proof(by, "answer", req.id, caller_request_id=caller_request_id)
            new = req.model_copy(update={
                "status": RequestStatus.ANSWERED, "hops": hops, "scheduled": [],
                "answer": Answer(text=text, by=by_role, at_ms=now, request_id=caller_request_id,
                                 artefact_id=art.id, logical_id=art.logical_id, proof=proof[0] if proof else ""),
                "decided_by": by_role, "decided_ms": now, "decision_request_id": caller_request_id,
                "effect": Effect.PENDING,
            })
            return Step(new=new, action="question_answered", operator=by_role, tx=tx, change="answered",
                        details={"answer_artefact_id": art.id, "text": text, "caller_request_id": caller_request_id},
                        proof=proof)

        return await self.transition(request_id, step)

    async def amend(self, request_id: str, text: str, *, by: str, caller_request_id: str = "") -> HitlRequest:
        """Replace an answer the asker has not read yet (a new version of the Answer artefact)."""
        if not text.strip():
            raise InvalidInput("the answer is empty")
        by_role = human_role(by)

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if req.kind != RequestKind.QUESTION or req.answer is None:
                return Denied(f"{req.id} has no answer to amend", hint="use holt answer", audit=False)
            if caller_request_id and req.answer.request_id == caller_request_id and req.answer.text == text:
                return Unchanged(req)
            if req.consumed_ms:
                return Denied(f"too late to amend: {req.role} already read the answer at {when(req.consumed_ms)}",
                              operator=by)
            if req.status != RequestStatus.ANSWERED or req.answer.flagged:
                return Denied(f"question {req.id} is {req.status.value}: only a person's answer can be amended",
                              operator=by)
            problem = self._may_answer(req, by)
            if problem:
                return Denied(problem, operator=by)
            previous = req.answer
            tx = Tx()
            art = self._artefact(tx, req.id, Artefact(
                id=new_id(), logical_id=previous.logical_id or previous.artefact_id, version=previous.amended + 2,
                structural_type=StructuralType.ANSWER, type=ANSWER_TYPE, payload=text,
                source_artefacts=[req.artefact_id, req.target_artefact_id, previous.artefact_id],
                produced_by_role=by_role), thread=True)
            now = now_ms()
            nonce, proof = self._proof(by, "amend", req.id, caller_request_id=caller_request_id)
            new = req.model_copy(update={
                "answer": Answer(text=text, by=by_role, at_ms=now, request_id=caller_request_id,
                                 artefact_id=art.id, logical_id=art.logical_id, amended=previous.amended + 1,
                                 proof=nonce),
                "decided_by": by_role, "decided_ms": now, "decision_request_id": caller_request_id,
            })
            return Step(new=new, action="answer_amended", operator=by_role, tx=tx, change="amended",
                        details={"answer_artefact_id": art.id, "previous_artefact_id": previous.artefact_id,
                                 "text": text}, proof=(nonce, proof))

        return await self.transition(request_id, step)

    async def consume(self, request_id: str) -> HitlRequest:
        """The asker's re-run reads its answer: from now on it cannot be amended."""

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if req.consumed_ms or req.answer is None:
                return Unchanged(req)
            return Step(new=req.model_copy(update={"consumed_ms": now_ms()}), action="answer_consumed",
                        operator=req.role, change="consumed")

        return await self.transition(request_id, step)

    async def route(self, request_id: str, *, hop_index: int, claim_tx: Tx, claim_id: str) -> HitlRequest | None:
        """Record that the current peer hop was assigned with ``claim_id`` (created in ``claim_tx``)."""

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            hop = req.current_hop
            if not req.is_open or hop is None or len(req.hops) - 1 != hop_index or hop.claim_id:
                return Unchanged(req)
            hops = [*req.hops[:-1], hop.model_copy(update={"claim_id": claim_id})]
            return Step(new=req.model_copy(update={"hops": hops}), action="question_routed",
                        operator=SYSTEM_ORCHESTRATOR, tx=Tx().extend(claim_tx), change="routed",
                        details={"to": hop.to, "claim_id": claim_id})

        try:
            return await self.transition(request_id, step)
        except NotFound:
            return None

    async def move_up(self, request_id: str, *, from_hop: int, outcome: str, note: str,
                      operator: str) -> HitlRequest:
        """The asked agent could not answer (or timed out): ask the next in the chain, finally a human."""

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if not req.is_open or len(req.hops) - 1 != from_hop or req.for_humans:
                return Unchanged(req)
            now = now_ms()
            hops = [*req.hops[:-1], req.hops[-1].model_copy(update={"outcome": outcome, "note": note[:500]})]
            rest: list[str] = json.loads(req.reason or "[]")
            tx = Tx()
            self._unschedule(tx, req)
            update: dict[str, Any] = {}
            if rest:
                nxt = f"role:{rest[0]}"
                hops.append(Hop(to=nxt, at_ms=now, note=f"escalated from {req.assignee}"))
                draft = req.model_copy(update={"hops": hops})
                scheduled = self._schedule(tx, draft, [(f"peer:{len(hops) - 1}", now + int(req.peer_timeout_s * 1000))])
                update = {"assignee": nxt, "reason": dumps(rest[1:]), "scheduled": scheduled}
                notify = ""
            else:
                hops.append(Hop(to="human", at_ms=now, note=f"escalated from {req.assignee}"))
                draft = req.model_copy(update={"hops": hops})
                scheduled, deadline = self._human_clock(tx, draft, now)
                update = {"assignee": "human", "reason": "", "scheduled": scheduled, "deadline_ms": deadline}
                notify = "request"
            new = req.model_copy(update={"hops": hops, **update})
            return Step(new=new, action="question_escalated", operator=operator, tx=tx, change="escalated",
                        details={"from": req.assignee, "to": new.assignee, "outcome": outcome, "note": note[:500]},
                        notify=notify, notify_text=f"Question from {req.role} (escalated to people): {req.text}")

        return await self.transition(request_id, step)

    # ================================================================== approvals

    async def request_approval(
        self, requester: Requester, *, source: GateSource, risk: str, artefact: Artefact, action: str,
        target: str, plan: Any, digest: str, dedupe: str, extra: Tx | None = None, decide: bool = True,
    ) -> HitlRequest:
        """Open an approval request (or, for an auto-approving level, record the automatic approval).

        ``decide`` False (an agent's process, which cannot write the system's proof): an auto-approving level's
        request is created open, unheld and without deadlines or notification, and the orchestrator approves it
        (``auto_approve``) after checking the policy itself."""
        level: RiskPolicy = self.policy.level(risk)
        now = now_ms()
        req = HitlRequest(
            id=new_id(), kind=RequestKind.APPROVAL, created_ms=now, claim_id=requester.claim_id,
            role=requester.role, workflow_id=requester.workflow_id, started_by=requester.started_by,
            artefact_id=artefact.id, logical_id=artefact.logical_id, target_artefact_id=requester.target.id,
            producer=artefact.produced_by_role,
            source=source, action=action, target=target, plan=plan, risk=risk, digest=digest,
            min_approvals=level.min_approvals, approver_roles=list(level.approvers),
            require_justification=level.require_justification, ladder=self._ladder(level.escalate_after),
            expire_after_s=level.expire_after or 0.0, on_expire=level.on_expire,
        )
        tx = Tx()
        if source == GateSource.TOOL and not level.auto_approve:
            # Held: registered in the same step as the plan artefact (which is in ``extra``), so it never
            # counts as output unapproved.
            self._own(tx, artefact.id, req.id)
        if extra is not None:
            tx.extend(extra)
        if level.auto_approve and decide:
            step = self._auto_approved(req, risk, tx, now)
            step.change = "created"
            return await self._create(step, dedupe=dedupe)
        if level.auto_approve:
            step = Step(new=req.model_copy(update={"reason": f"risk level {risk}: waiting for the automatic approval"}),
                        action="approval_auto_requested", operator=requester.role, tx=tx, change="created",
                        details={"risk": risk, "action": action, "target": target, "digest": digest,
                                 "artefact_id": artefact.id, "claim_id": req.claim_id, "source": source.value})
            return await self._create(step, dedupe=dedupe)
        req.scheduled, req.deadline_ms = self._human_clock(tx, req, now)
        step = Step(new=req, action="approval_requested", operator=requester.role, tx=tx, change="created",
                    details={"risk": risk, "action": action, "target": target, "digest": digest,
                             "artefact_id": artefact.id, "claim_id": req.claim_id, "source": source.value},
                    notify="request",
                    notify_text=f"Approval needed ({risk}): {action or artefact.type} on {target or artefact.id} "
                                f"requested by {requester.role}")
        return await self._create(step, dedupe=dedupe)

    def _auto_approved(self, req: HitlRequest, risk: str, tx: Tx, now: int) -> Step:
        art = self._decision_artefact(tx, req, "approved", SYSTEM_POLICY, by=SYSTEM_POLICY,
                                      reason=f"risk level {risk} approves automatically")
        new = req.model_copy(update={
            "status": RequestStatus.APPROVED, "decided_by": SYSTEM_POLICY, "decided_ms": now, "risk": risk,
            "reason": f"risk level {risk} approves automatically", "decision_artefact_id": art.id,
            "effect": Effect.NONE,  # an auto-approved plan is never held: it counts as output at once
        })
        return Step(new=new, action="approval_auto_approved", operator=SYSTEM_POLICY, tx=tx, system=True,
                    change="approved", details={"risk": risk, "action": req.action, "target": req.target,
                                                "digest": req.digest, "artefact_id": req.artefact_id,
                                                "claim_id": req.claim_id})

    async def auto_approve(self, request_id: str, risk: str) -> HitlRequest:
        """The orchestrator approves an open request an agent raised at a level that approves automatically (the
        caller checked ``risk`` against the policy and the artefact: the stored terms are the agent's)."""

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if not req.is_open or req.kind != RequestKind.APPROVAL or not self.policy.level(risk).auto_approve:
                return Unchanged(req)
            return self._auto_approved(req, risk, Tx(), now_ms())

        return await self.transition(request_id, step)

    def _allowed_roles(self, req: HitlRequest) -> set[str]:
        roles = set(req.approver_roles)
        for i in range(min(req.escalation_level, len(req.ladder))):
            roles |= set(req.ladder[i].to)
        return roles

    def _check_decider(self, req: HitlRequest, operator: str, *, justification: str) -> str | None:
        """Separation of duties and roles; None when ``operator`` may decide ``req``."""
        if operator_of_role(human_role(operator)) != operator or operator.startswith("system"):
            return f"{operator} is not a person"
        if req.started_by and req.started_by == operator:
            return f"{operator} started this workflow and cannot approve its own gate (separation of duties)"
        if operator_of_role(req.producer) == operator:
            return f"{operator} produced the gated artefact and cannot approve it (separation of duties)"
        roles = self.policy.roles_of(operator)
        allowed = self._allowed_roles(req)
        if not roles & allowed:
            return (f"{operator} may not decide this {req.risk} request (needs one of the roles "
                    f"{sorted(allowed)}; has {sorted(roles) or 'none'})")
        if req.require_justification and not justification.strip():
            return f"a {req.risk} request needs a justification (--justification)"
        return None

    async def approve(self, request_id: str, *, operator: str, justification: str = "",
                      caller_request_id: str = "", digest: str | None = None) -> HitlRequest:
        """One approval; the request is approved once ``min_approvals`` distinct people approved."""

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if req.kind == RequestKind.POST_REVIEW:
                return self._close_review(req, operator, justification, caller_request_id, approve=True)
            if req.kind != RequestKind.APPROVAL:
                return Denied(f"{req.id} is a question", hint="answer it with holt answer", audit=False)
            mine = [a for a in req.approvals if a.operator == operator]
            if caller_request_id and any(a.request_id == caller_request_id for a in mine):
                return Unchanged(req)
            if not req.is_open:
                return Denied(f"request {req.id} is already {req.status.value} by {req.decided_by} at "
                              f"{when(req.decided_ms)}", operator=operator)
            if digest is not None and digest != req.digest:
                return Denied(f"the request now covers digest {req.digest[:12]}, not {digest[:12]}: "
                              "the payload changed since you looked", operator=operator)
            problem = self._check_decider(req, operator, justification=justification)
            if problem:
                return Denied(problem, operator=operator)
            if any(a.digest == req.digest for a in mine):
                return Denied(f"{operator} already approved this request at {when(mine[0].at_ms)}; "
                              f"it needs {req.min_approvals} distinct approvers", operator=operator)
            now = now_ms()
            tx = Tx()
            art = self._decision_artefact(tx, req, "approved", human_role(operator), by=operator,
                                          justification=justification)
            nonce, proof = self._proof(operator, "approve", req.id, digest=req.digest,
                                       caller_request_id=caller_request_id)
            approvals = [*req.approvals, Approval(operator=operator, at_ms=now, digest=req.digest,
                                                  justification=justification, request_id=caller_request_id,
                                                  artefact_id=art.id, proof=nonce)]
            update: dict[str, Any] = {"approvals": approvals}
            count = len(dict.fromkeys(a.operator for a in approvals if a.digest == req.digest))
            done = count >= req.min_approvals
            if done:
                self._unschedule(tx, req)
                update.update({"status": RequestStatus.APPROVED, "decided_by": human_role(operator),
                               "decided_ms": now, "justification": justification, "scheduled": [],
                               "decision_request_id": caller_request_id, "decision_artefact_id": art.id,
                               "effect": _effect_of_approval(req)})
            new = req.model_copy(update=update)
            return Step(new=new, action="approved" if done else "approval_added", operator=human_role(operator),
                        tx=tx, change="approved" if done else "approval_added", notify="decision" if done else "",
                        proof=(nonce, proof),
                        notify_text=f"Approved by {operator}: {req.action or req.id}",
                        details={"digest": req.digest, "justification": justification, "approvals": count,
                                 "needed": req.min_approvals, "decision_artefact_id": art.id})

        return await self.transition(request_id, step)

    async def reject(self, request_id: str, *, operator: str, reason: str, justification: str = "",
                     caller_request_id: str = "") -> HitlRequest:
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason (--reason); it is passed back to the agent")

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if req.kind == RequestKind.POST_REVIEW:
                return self._close_review(req, operator, reason, caller_request_id, approve=False)
            if req.kind != RequestKind.APPROVAL:
                return Denied(f"{req.id} is a question", hint="answer it with holt answer", audit=False)
            if caller_request_id and req.decision_request_id == caller_request_id and \
                    req.decided_by == human_role(operator):
                return Unchanged(req)
            if not req.is_open:
                return Denied(f"request {req.id} is already {req.status.value} by {req.decided_by} at "
                              f"{when(req.decided_ms)}", operator=operator)
            problem = self._check_decider(req, operator, justification=justification or reason)
            if problem:
                return Denied(problem, operator=operator)
            now = now_ms()
            tx = Tx()
            art = self._decision_artefact(tx, req, "rejected", human_role(operator), by=operator, reason=reason,
                                          justification=justification)
            self._unschedule(tx, req)
            nonce, proof = self._proof(operator, "reject", req.id, digest=req.digest,
                                       caller_request_id=caller_request_id)
            new = req.model_copy(update={
                "status": RequestStatus.REJECTED, "decided_by": human_role(operator), "decided_ms": now,
                "reason": reason, "justification": justification, "scheduled": [],
                "decision_request_id": caller_request_id, "decision_artefact_id": art.id, "effect": Effect.PENDING,
                "decision_proof": nonce,
            })
            return Step(new=new, action="rejected", operator=human_role(operator), tx=tx, change="rejected",
                        proof=(nonce, proof),
                        notify="decision", notify_text=f"Rejected by {operator}: {req.action or req.id}: {reason}",
                        details={"reason": reason, "justification": justification, "decision_artefact_id": art.id})

        return await self.transition(request_id, step)

    async def bypass(self, request_id: str, *, operator: str, justification: str,
                     caller_request_id: str = "") -> HitlRequest:
        """Break-glass: approve now without the normal approvers; opens a post-review item for someone else."""
        if not justification.strip():
            raise InvalidInput("a bypass needs a justification (--justification)")
        review_id = new_id()

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if req.kind != RequestKind.APPROVAL:
                return Denied(f"{req.id} is not an approval request", audit=False)
            if req.status == RequestStatus.BYPASSED and caller_request_id and \
                    req.decision_request_id == caller_request_id:
                return Unchanged(req)
            if not req.is_open:
                return Denied(f"request {req.id} is already {req.status.value} by {req.decided_by} at "
                              f"{when(req.decided_ms)}", operator=operator)
            bypass_role = self.policy.bypass_role
            if bypass_role is None or bypass_role not in self.policy.roles_of(operator):
                return Denied(f"{operator} does not hold the bypass role "
                              f"({bypass_role or 'none is configured in hitl.bypass_role'})", operator=operator)
            if operator_of_role(req.producer) == operator:
                return Denied(f"{operator} produced the gated artefact and cannot bypass its gate", operator=operator)
            now = now_ms()
            tx = Tx()
            art = self._decision_artefact(tx, req, "bypassed", human_role(operator), by=operator,
                                          justification=justification)
            self._unschedule(tx, req)
            review = HitlRequest(
                id=review_id, kind=RequestKind.POST_REVIEW, created_ms=now, claim_id=req.claim_id, role=req.role,
                workflow_id=req.workflow_id, started_by=req.started_by, artefact_id=req.artefact_id,
                producer=req.producer, action=req.action, target=req.target, plan=req.plan, risk=req.risk,
                digest=req.digest, review_of=req.id, bypassed_by=operator, justification=justification,
                text=f"Review the bypass of {req.id} by {operator}: {justification}",
            )
            rkey = self.keys.hitl_request(review_id)
            tx.require_absent(rkey).hset(rkey, review.to_hash())
            tx.zadd(self.keys.hitl_open, now, review_id)
            tx.publish(self.keys.hitl_events, RequestChange(
                request_id=review_id, kind=review.kind, status=review.status, change="created").to_json())
            nonce, proof = self._proof(operator, "bypass", req.id, digest=req.digest,
                                       caller_request_id=caller_request_id)
            new = req.model_copy(update={
                "status": RequestStatus.BYPASSED, "decided_by": human_role(operator), "decided_ms": now,
                "justification": justification, "scheduled": [], "decision_request_id": caller_request_id,
                "decision_artefact_id": art.id, "post_review_id": review_id, "effect": _effect_of_approval(req),
                "decision_proof": nonce,
            })
            return Step(new=new, action="bypassed", operator=human_role(operator), tx=tx, change="bypassed",
                        proof=(nonce, proof),
                        notify="decision", notify_text=f"BYPASSED by {operator}: {req.action or req.id}: "
                                                       f"{justification} (post-review {review_id})",
                        details={"justification": justification, "post_review_id": review_id,
                                 "decision_artefact_id": art.id})

        return await self.transition(request_id, step)

    def _close_review(self, req: HitlRequest, operator: str, note: str, caller_request_id: str, *,
                      approve: bool) -> Step | Unchanged | Denied:
        if not req.is_open:
            if caller_request_id and req.decision_request_id == caller_request_id:
                return Unchanged(req)
            return Denied(f"post-review {req.id} was already closed by {req.decided_by} at {when(req.decided_ms)}",
                          operator=operator)
        if req.bypassed_by == operator:
            return Denied(f"{operator} made the bypass: another person must review it", operator=operator)
        now = now_ms()
        status = RequestStatus.CLOSED if approve else RequestStatus.REJECTED
        nonce, proof = self._proof(operator, "close", req.id, caller_request_id=caller_request_id)
        new = req.model_copy(update={"status": status, "decided_by": human_role(operator), "decided_ms": now,
                                     "reason": note, "decision_request_id": caller_request_id,
                                     "decision_proof": nonce})
        return Step(new=new, action="post_review_closed", operator=human_role(operator), change=status.value,
                    proof=(nonce, proof),
                    details={"bypassed_request": req.review_of, "finding": "accepted" if approve else "objection",
                             "note": note})

    # ================================================================== deadlines (system:timeout)

    async def escalate(self, request_id: str, level: int) -> HitlRequest:
        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if not req.is_open or req.escalation_level > level or level >= len(req.ladder):
                return Unchanged(req)
            to = req.ladder[level].to
            tx = Tx().zrem(self.keys.hitl_deadlines, f"{req.id}|esc:{level}")
            new = req.model_copy(update={"escalation_level": level + 1,
                                         "scheduled": [m for m in req.scheduled if m != f"{req.id}|esc:{level}"]})
            what = "question" if req.kind == RequestKind.QUESTION else f"{req.risk} approval"
            return Step(new=new, action="escalated", operator=SYSTEM_TIMEOUT, change="escalated", tx=tx,
                        notify="escalation", details={"level": level + 1, "to": to},
                        notify_text=f"Escalation {level + 1}: {what} {req.id} still waiting"
                                    + (f" (now also for {', '.join(to)})" if to else "")
                                    + f": {req.text or req.action}")

        return await self.transition(request_id, step)

    async def expire(self, request_id: str) -> HitlRequest:
        """Nobody decided in time: ``expired``, decided by system:timeout, with the policy's outcome."""

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if not req.is_open:
                return Unchanged(req)
            now = now_ms()
            tx = Tx()
            self._unschedule(tx, req)
            update: dict[str, Any] = {"status": RequestStatus.EXPIRED, "decided_by": SYSTEM_TIMEOUT,
                                      "decided_ms": now, "scheduled": []}
            details: dict[str, Any] = {"on_expire": req.on_expire}
            if req.kind == RequestKind.QUESTION:
                if req.on_expire == "default":
                    art = self._artefact(tx, req.id, Artefact(
                        id=(aid := new_id()), logical_id=aid, version=1, structural_type=StructuralType.ANSWER,
                        type=ANSWER_TYPE, payload=req.default_answer,
                        source_artefacts=[req.artefact_id, req.target_artefact_id], produced_by_role=SYSTEM_TIMEOUT),
                        thread=True)
                    update["answer"] = Answer(text=req.default_answer, by=SYSTEM_TIMEOUT, at_ms=now,
                                              artefact_id=art.id, flagged=True)
                    update["reason"] = "expired: answered with the configured default"
                    details["answer_artefact_id"] = art.id
                else:
                    ident = new_id()
                    failure = self._artefact(tx, req.id, Artefact(
                        id=ident, logical_id=ident, version=1, structural_type=StructuralType.FAILURE,
                        type=EXPIRY_FAILURE_TYPE, payload=f"Question {req.id} from {req.role} was not answered in "
                        f"time: {req.text}", source_artefacts=[req.artefact_id], produced_by_role=SYSTEM_TIMEOUT))
                    update["reason"] = "expired: nobody answered in time"
                    details["failure_artefact_id"] = failure.id
            else:
                outcome = "approved" if req.on_expire == "approve" else "rejected"
                art = self._decision_artefact(tx, req, "expired", SYSTEM_TIMEOUT, by=SYSTEM_TIMEOUT,
                                              counts_as=outcome)
                update["reason"] = f"expired: counts as {outcome}"
                update["decision_artefact_id"] = art.id
            update["effect"] = Effect.PENDING
            if req.kind == RequestKind.APPROVAL and req.on_expire == "approve":
                update["effect"] = _effect_of_approval(req)
            new = req.model_copy(update=update)
            return Step(new=new, action="expired", operator=SYSTEM_TIMEOUT, tx=tx, change="expired", notify="expiry",
                        system=True,
                        notify_text=f"Expired: {req.kind.value} {req.id} ({update['reason']}): "
                                    f"{req.text or req.action}",
                        details=details)

        return await self.transition(request_id, step)

    # ================================================================== the orchestrator's bookkeeping

    async def supersede(self, request_id: str, reason: str) -> HitlRequest:
        """A newer version of the gated artefact (or the claim closed): this request no longer matters."""

        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if not req.is_open:
                return Unchanged(req)
            tx = Tx()
            self._unschedule(tx, req)
            new = req.model_copy(update={"status": RequestStatus.SUPERSEDED, "decided_by": SYSTEM_ORCHESTRATOR,
                                         "decided_ms": now_ms(), "reason": reason, "scheduled": []})
            return Step(new=new, action="superseded", operator=SYSTEM_ORCHESTRATOR, tx=tx, details={"reason": reason},
                        system=True)

        return await self.transition(request_id, step)

    async def cancel(self, request_id: str, reason: str) -> HitlRequest:
        def step(req: HitlRequest) -> Step | Unchanged | Denied:
            if not req.is_open and req.effect != Effect.PENDING:
                return Unchanged(req)
            tx = Tx()
            self._unschedule(tx, req)
            update: dict[str, Any] = {"effect": Effect.DONE, "scheduled": []}
            if req.is_open:
                update.update({"status": RequestStatus.CANCELLED, "decided_by": SYSTEM_ORCHESTRATOR,
                               "decided_ms": now_ms(), "reason": reason})
            return Step(new=req.model_copy(update=update), action="cancelled" if req.is_open else "effect_dropped",
                        operator=SYSTEM_ORCHESTRATOR, tx=tx, details={"reason": reason}, system=req.is_open)

        return await self.transition(request_id, step)

    def effect_done_tx(self, req: HitlRequest) -> Tx:
        """Mark a decided request's effect as carried out (added to the orchestrator's own write)."""
        done = req.model_copy(update={"effect": Effect.DONE, "rev": req.rev + 1, "updated_ms": now_ms()})
        tx = self._base_tx(req, done)
        tx.publish(self.keys.hitl_events, RequestChange(
            request_id=req.id, kind=req.kind, status=req.status, change="effect_done", claim_id=req.claim_id,
            rev=done.rev).to_json())
        return tx


def _effect_of_approval(req: HitlRequest) -> Effect:
    """A grant gate needs nothing done once approved (the gate simply admits); a held plan must be counted."""
    return Effect.PENDING if req.source == GateSource.TOOL else Effect.NONE


class _Conflict(Exception):
    """Our compare-and-set lost: re-read and think again."""


def digest_of(artefact: Artefact) -> str:
    return payload_digest(artefact.payload)


async def post_goal(bb: Blackboard, goal: Artefact, operator: str) -> Artefact:
    """Write a goal artefact recording who started the workflow (separation of duties), with its audit record."""
    goal, tx = bb.artefact_tx(goal)
    proof = Proof(act="start", subject=goal.id, operator=operator, at_ms=now_ms())
    tx = Tx().set(bb.keys.proof(operator, goal.id, secrets.token_hex(8)), proof.to_json()).extend(tx)
    tx.set(bb.keys.hitl_starter(goal.id), operator)
    result, _ = await bb.audit.commit(tx, operator=human_role(operator), action="workflow_started", subject=goal.id,
                                      details={"goal": goal.payload[:500]})
    if not result.ok:
        raise HoltError(f"artefact {goal.id} already exists")
    return goal
