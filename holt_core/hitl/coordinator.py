"""The orchestrator's side of human-in-the-loop: holds, resumes, gates, peer routing and deadlines.

The orchestrator calls four hooks: ``intercept`` (is this artefact a question, answer, decision or held
plan rather than ordinary output?), ``plan`` (does a decided request require something of this claim:
resume its agent, count a held output, terminate it?), the ``ApprovalGate`` wrapped around its decision
gate, and ``on_event`` for the ``hitl:events`` channel. Everything here is rebuilt from Redis by ``load``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import Protocol

from holt_core import claims
from holt_core.blackboard import Blackboard
from holt_core.claims import ClaimRuntime
from holt_core.config import Config
from holt_core.decisions import Decision, DecisionGate, DecisionKind, decision_of
from holt_core.errors import HoltError
from holt_core.hitl.deadlines import DeadlineSweeper
from holt_core.hitl.models import (
    ArtefactOfRequest,
    Effect,
    GateSource,
    HitlRequest,
    RequestChange,
    RequestKind,
    RequestStatus,
    payload_digest,
    plan_digest,
)
from holt_core.hitl.notify import Notifier
from holt_core.hitl.policy import RISK_ORDER
from holt_core.hitl.proofs import ForgeryReporter
from holt_core.hitl.requests import SYSTEM_ORCHESTRATOR, RequestStore
from holt_core.logs import EventLogger
from holt_core.models import Artefact, Claim, ClaimStatus, Phase, StructuralType, new_id, now_ms
from holt_core.transaction import Tx

Plan = tuple[Decision, Callable[[], Awaitable[bool]]]


class GrantPort(Protocol):
    """Notify the agent or launch its worker (``holt_core.engine.grants.Grants``)."""

    def announce(self, tx: Tx, claim_id: str, artefact_id: str, role: str, grant_type: str, *,
                 status: ClaimStatus | None = None) -> bool: ...

    def notify(self, tx: Tx, claim_id: str, artefact_id: str, role: str, grant_type: str) -> None: ...

    def launch(self, role: str, claim_id: str) -> None: ...


class ClaimHost(Protocol):
    """What the coordinator needs of the engine it plugs into (``holt_core.engine.orchestrator``)."""

    @property
    def bb(self) -> Blackboard: ...

    @property
    def config(self) -> Config: ...

    @property
    def log(self) -> EventLogger: ...

    @property
    def grants(self) -> GrantPort: ...

    @property
    def claims(self) -> Mapping[str, ClaimRuntime]: ...

    async def advance(self, claim_id: str) -> None: ...

    async def redrive_artefact(self, artefact_id: str) -> None: ...

    def track(self, rt: ClaimRuntime) -> None: ...

    def note_output(self, claim_id: str, artefact: Artefact) -> bool: ...

    def terminate_plan(self, rt: ClaimRuntime, reason: str, extra: Callable[[], Tx | None] | None = None,
                       after: Callable[[bool], Awaitable[None]] | None = None) -> Plan: ...
_GRANT_KINDS = frozenset({DecisionKind.GRANT_REVIEW, DecisionKind.GRANT_PARALLEL, DecisionKind.GRANT_EXCLUSIVE,
                          DecisionKind.QUEUE_GRANT})
_GRANT_TYPE = {Phase.REVIEW: "review", Phase.PARALLEL: "claim", Phase.EXCLUSIVE: "exclusive"}


class Disposition(Enum):
    NORMAL = "normal"  # an ordinary artefact
    OUTPUT_ONLY = "output_only"  # counts as output of the claim it answers, but gets no claim of its own
    HELD = "held"  # neither: a question, answer, decision or a plan waiting for approval


class HitlCoordinator:
    def __init__(self, orch: ClaimHost) -> None:
        self.orch = orch
        self.bb = orch.bb
        self.keys = orch.bb.keys
        self.policy = orch.config.hitl
        # Reads honour proofs (holt_core/hitl/proofs.py): a decision without its person's proof does not count.
        self.store = RequestStore(orch.bb, self.policy, on_forgery=ForgeryReporter(orch.bb, orch.log))
        self.requests: dict[str, HitlRequest] = {}  # open, or decided with an effect still to carry out
        self.by_claim: dict[str, set[str]] = defaultdict(set)
        self.artefacts: dict[str, str] = {}  # artefact id -> request id (hitl:artefacts)
        self.gates: dict[str, HitlRequest] = {}  # gated artefact id -> its grant-gate request (cache)
        self._bulk = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.sweeper = DeadlineSweeper(self.store, log=orch.log, on_cycle=self._housekeeping)
        self.notifier = Notifier(orch.bb, self.policy.notify, log=orch.log)

    # ================================================================== lifecycle

    @property
    def channels(self) -> tuple[str, ...]:
        return (self.keys.hitl_events,)

    async def load(self) -> None:
        """Before recovery replays artefacts: every hitl artefact and every request still in play."""
        self._bulk = True
        await self.bb.redis.set(self.keys.hitl_policy, self.policy.model_dump_json())
        await self.store.start_system_proofs()  # requests the system closed before its closures were proven
        raw = await self.bb.redis.hgetall(self.keys.hitl_artefacts)
        self.artefacts = {str(k): str(v) for k, v in raw.items()}
        for req in await self.store.active_requests():
            self._remember(req)

    def recovered(self) -> None:
        self._bulk = False
        for req in list(self.requests.values()):
            self._spawn(self._route(req))
        self._spawn(self._auto_approve_all())

    async def _auto_approve_all(self) -> None:
        for req in list(self.requests.values()):
            self._remember(await self._auto_approve(req))

    def start(self) -> None:
        self._spawn(self.sweeper.run())
        self._spawn(self.notifier.run())

    async def stop(self) -> None:
        self.sweeper.halt()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.orch.log.error("error", message="hitl task failed", error=repr(task.exception()))

    def _remember(self, req: HitlRequest) -> None:
        if req.is_open or req.effect == Effect.PENDING:
            self.requests[req.id] = req
            if req.claim_id:
                self.by_claim[req.claim_id].add(req.id)
        else:
            self._forget(req.id)
        if req.kind == RequestKind.APPROVAL and req.source == GateSource.GRANT:
            self.gates[req.artefact_id] = req
        if req.kind == RequestKind.QUESTION and req.artefact_id:
            self.artefacts.setdefault(req.artefact_id, req.id)

    def _forget(self, request_id: str) -> None:
        req = self.requests.pop(request_id, None)
        if req is not None and req.claim_id:
            ids = self.by_claim.get(req.claim_id)
            if ids is not None:
                ids.discard(request_id)
                if not ids:
                    del self.by_claim[req.claim_id]

    # ================================================================== events

    def on_event(self, data: str) -> None:
        if '"artefact_id"' in data and '"kind"' not in data:
            # Taken in synchronously: the artefact's own event comes next on this subscription.
            try:
                owned = ArtefactOfRequest.model_validate_json(data)
            except ValueError:
                return
            self.artefacts[owned.artefact_id] = owned.request_id
            return
        try:
            change = RequestChange.model_validate_json(data)
        except ValueError:
            return
        self.sweeper.wake()
        self.notifier.wake()
        self._spawn(self.refresh(change.request_id))

    async def refresh(self, request_id: str) -> None:
        try:
            req = await self.store.get(request_id)
        except HoltError:
            self._forget(request_id)
            return
        cached = self.requests.get(request_id)
        if cached is not None and cached.rev > req.rev:
            return
        req = await self._auto_approve(req)
        self._remember(req)
        if req.is_open:
            await self._relist([req])
        await self._route(req)
        for claim_id in self._claims_of(req):
            if claim_id in self.orch.claims:
                await self.orch.advance(claim_id)
        if _releases_plan(req):
            # Held when it arrived, so its live event created nothing and the safety sweep skips it: approved,
            # it is a new artefact now, the same replay a restart does (its claim created once, guarded).
            await self.orch.redrive_artefact(req.artefact_id)

    def _claims_of(self, req: HitlRequest) -> list[str]:
        out = [req.claim_id] if req.claim_id else []
        out.extend(h.claim_id for h in req.hops if h.claim_id)
        return out

    # ================================================================== hook 1: artefacts

    async def intercept(self, artefact: Artefact, *, live: bool = False) -> Disposition:
        """What the artefact is to the orchestrator. ``live``: it came on the subscription that announced
        every HITL artefact before it (``ArtefactOfRequest``), so memory is complete and Redis is not asked."""
        request_id = self.artefacts.get(artefact.id)
        if request_id is None and not self._bulk and not live:
            request_id = await self.store.request_for_artefact(artefact.id)
        if request_id is None:
            if artefact.version > 1:
                await self._supersede_older(artefact)
            return Disposition.NORMAL
        self.artefacts[artefact.id] = request_id
        req = self.requests.get(request_id)
        if req is None:
            try:
                req = await self.store.get(request_id)
            except HoltError:
                return Disposition.HELD
            self._remember(req)
        if req.kind == RequestKind.QUESTION:
            if artefact.id != req.artefact_id and artefact.structural_type == StructuralType.ANSWER and \
                    artefact.produced_by_role in self.orch.config.agents:
                return Disposition.OUTPUT_ONLY  # a peer's answer completes its direct-assignment claim
            if artefact.id == req.artefact_id and not self._bulk:
                await self._route(req)
            return Disposition.HELD
        if req.kind == RequestKind.APPROVAL and req.source == GateSource.TOOL and artefact.id == req.artefact_id:
            return Disposition.NORMAL if _releases_plan(req) else Disposition.HELD
        return Disposition.HELD

    async def _supersede_older(self, artefact: Artefact) -> None:
        for req in list(self.requests.values()):
            if req.is_open and req.kind == RequestKind.APPROVAL and req.logical_id == artefact.logical_id \
                    and req.artefact_id != artefact.id:
                with contextlib.suppress(HoltError):
                    self._remember(await self.store.supersede(
                        req.id, f"a newer version ({artefact.version}, {artefact.id}) of the artefact arrived"))

    async def _auto_approve(self, req: HitlRequest) -> HitlRequest:
        """An agent's request for its declared action at a level that approves automatically: the agent's user cannot
        prove a system decision, so the orchestrator makes it, by the policy's risk for the artefact (never less than
        the request's own), only for a plan that was never held and whose digest matches."""
        if not (req.is_open and req.kind == RequestKind.APPROVAL and req.source == GateSource.TOOL
                and not req.approvals and req.risk in RISK_ORDER and req.artefact_id):
            return req
        if self.artefacts.get(req.artefact_id) == req.id:
            return req  # held for people when it was raised: only a person decides it
        artefact = (await self.bb.get_artefacts([req.artefact_id]))[0]
        if artefact is None or artefact.produced_by_role != req.role or \
                req.digest != plan_digest(req.action, req.target, req.plan, artefact.payload):
            return req
        by_rule = self.policy.risk_for(artefact_type=artefact.type, produced_by=req.role, action=req.action)
        risk = max([r for r in (req.risk, by_rule) if r is not None], key=RISK_ORDER.index)
        if not self.policy.level(risk).auto_approve:
            return req
        try:
            return await self.store.auto_approve(req.id, risk)
        except HoltError:
            return req

    # ================================================================== peer routing

    async def _route(self, req: HitlRequest) -> None:
        """A question whose current hop is an agent gets a direct-assignment claim on the Question."""
        hop = req.current_hop
        if not req.is_open or hop is None or hop.claim_id or not hop.to.startswith("role:"):
            return
        role = hop.to[len("role:"):]
        if role not in self.orch.config.agents:
            await self.store.move_up(req.id, from_hop=len(req.hops) - 1, outcome="failed",
                                     note=f"no agent {role} in holt.yml", operator=SYSTEM_ORCHESTRATOR)
            return
        question = (await self.bb.get_artefacts([req.artefact_id]))[0]
        if question is None:
            return
        claim = Claim(id=new_id(), artefact_id=question.id, status=ClaimStatus.PENDING_ASSIGNMENT,
                      granted_exclusive_agent=role, artefact_expected=True)
        created = now_ms()
        tx = claims.create_tx(self.keys, claim, created)
        launch = self.orch.grants.announce(tx, claim.id, claim.artefact_id, role, "exclusive", status=claim.status)
        routed = await self.store.route(req.id, hop_index=len(req.hops) - 1, claim_tx=tx, claim_id=claim.id)
        if routed is None or routed.current_hop is None or routed.current_hop.claim_id != claim.id:
            return  # someone else routed it, or it moved on
        self._remember(routed)
        self.orch.track(ClaimRuntime(claim=claim, target=question, rev=1, created_ms=created))
        self.orch.log.info("question_routed", request_id=req.id, claim_id=claim.id, agent_name=role)
        if launch:
            self.orch.grants.launch(role, claim.id)

    # ================================================================== hook 2: the claim's next decision

    def plan(self, rt: ClaimRuntime) -> Plan | None:
        claim = rt.claim
        if rt.target.structural_type == StructuralType.QUESTION and claim.status == ClaimStatus.PENDING_ASSIGNMENT:
            return self._peer_plan(rt)
        gate = self.gates.get(rt.target.id)
        if gate is not None and gate.effect == Effect.PENDING and gate.status in (
                RequestStatus.REJECTED, RequestStatus.EXPIRED) and not _approves(gate):
            why = f"approval {gate.status.value}" + (f" by {gate.decided_by}" if gate.decided_by else "")
            return self._terminate(rt, gate, f"{why}: {gate.reason or 'no reason given'} (request {gate.id})")
        for request_id in sorted(self.by_claim.get(claim.id, ())):
            req = self.requests.get(request_id)
            if req is None or req.effect != Effect.PENDING or req.source == GateSource.GRANT:
                continue
            if req.role not in claim.granted_agents:
                continue
            if req.kind == RequestKind.QUESTION:
                if req.answer is not None:
                    return self._resume(rt, req, f"resume {req.role}: question {req.id} {req.status.value}")
                return self._terminate(rt, req, f"question {req.id} from {req.role} expired unanswered")
            if req.kind == RequestKind.APPROVAL:
                if _approves(req):
                    return self._accept_plan(rt, req)
                if req.status == RequestStatus.REJECTED:
                    return self._resume(rt, req, f"resume {req.role}: its action was rejected ({req.reason})")
                return self._terminate(rt, req, f"approval of {req.action or req.id} {req.reason} (fail closed)")
        return None

    def _peer_plan(self, rt: ClaimRuntime) -> Plan | None:
        if rt.rework is not None or rt.failures:
            return None  # the ordinary rules complete or terminate it
        request_id = self.artefacts.get(rt.target.id)
        req = self.requests.get(request_id) if request_id else None
        if req is None:
            if request_id is not None:
                self._spawn(self.refresh(request_id))
            return None
        hop = req.current_hop
        if req.is_open and hop is not None and hop.claim_id == rt.claim.id:
            return None
        who = req.decided_by or req.assignee
        return self._terminate(rt, None, f"question {req.id} moved on ({req.status.value}, now with {who})")

    def _decision(self, kind: DecisionKind, rt: ClaimRuntime, summary: str, req: HitlRequest,
                  granted: tuple[str, ...] = ()) -> Decision:
        return decision_of(kind, rt.claim, rt.target, summary, granted, request_id=req.id,
                           request_status=req.status.value)

    def _terminate(self, rt: ClaimRuntime, req: HitlRequest | None, reason: str) -> Plan:
        def extra() -> Tx | None:
            return self.store.effect_done_tx(req) if req is not None else None

        async def after(ok: bool) -> None:
            await self._after_effect(req, ok)

        return self.orch.terminate_plan(rt, reason, extra, after)

    def _resume(self, rt: ClaimRuntime, req: HitlRequest, summary: str) -> Plan:
        role = req.role
        decision = self._decision(DecisionKind.RESUME, rt, summary, req, (role,))

        async def apply() -> bool:
            claim = rt.claim
            grant_type = "exclusive" if claim.status == ClaimStatus.PENDING_ASSIGNMENT or \
                claim.phase_state is None else _GRANT_TYPE[claim.phase_state.current]
            tx = self.store.effect_done_tx(req)
            tx.delete(self.keys.exec_lease(claim.id, role))  # the agent runs this grant once more
            # Resumed: the claim itself did not change, so the agent hears of it on its own channel.
            launch = self.orch.grants.announce(tx, claim.id, claim.artefact_id, role, grant_type)
            ok = (await self.bb.run(tx)).ok
            await self._after_effect(req, ok)
            if ok:
                self.orch.log.info("claim_resumed", claim_id=claim.id, agent_name=role, request_id=req.id,
                                   outcome=req.status.value)
                if launch:
                    self.orch.grants.launch(role, claim.id)
            return ok

        return decision, apply

    def _accept_plan(self, rt: ClaimRuntime, req: HitlRequest) -> Plan:
        decision = self._decision(DecisionKind.RESUME, rt, f"count {req.role}'s approved output {req.artefact_id}",
                                  req, (req.role,))

        async def apply() -> bool:
            ok = (await self.bb.run(self.store.effect_done_tx(req))).ok
            await self._after_effect(req, ok)
            if ok:
                plan = (await self.bb.get_artefacts([req.artefact_id]))[0]
                if plan is not None:
                    self.orch.note_output(rt.claim.id, plan)
            return ok

        return decision, apply

    async def _after_effect(self, req: HitlRequest | None, ok: bool) -> None:
        if req is None:
            return
        if ok:
            self._remember(req.model_copy(update={"effect": Effect.DONE, "rev": req.rev + 1}))
        else:  # our copy was stale: read it again before the next attempt
            with contextlib.suppress(HoltError):
                self._remember(await self.store.get(req.id))

    # ================================================================== hook 3: approval gates before grants

    async def grant_allowed(self, decision: Decision) -> bool:
        risk = self.policy.risk_for(artefact_type=decision.artefact_type, produced_by=decision.produced_by_role)
        if risk is None:
            return True
        rt = self.orch.claims.get(decision.claim_id)
        if rt is None:
            return False
        target = rt.target
        req = self.gates.get(target.id)
        if req is None:
            existing = await self.bb.redis.get(self.keys.hitl_dedupe(f"gate:{target.id}"))
            if existing:
                req = await self.store.get(str(existing))
            else:
                requester = await self.store.requester(rt.claim.id, target.produced_by_role, target)
                req = await self.store.request_approval(
                    requester, source=GateSource.GRANT, risk=risk, artefact=target, action=f"grant:{target.type}",
                    target=target.id, plan={"decision": decision.summary, "granted": list(decision.granted_roles)},
                    digest=payload_digest(target.payload), dedupe=f"gate:{target.id}")
                self.orch.log.info("approval_requested", request_id=req.id, claim_id=rt.claim.id, risk=risk,
                                   status=req.status.value)
            self._remember(req)
        # The stored risk too: an agent may rewrite the request's terms, the policy's risk is the one that counts.
        return _approves(req) and req.digest == payload_digest(target.payload) and req.risk == risk

    # ================================================================== housekeeping

    async def _housekeeping(self) -> None:
        """Requests whose claim closed without them (terminated elsewhere, a restart): cancel them. Open requests
        taken out of the open list by someone else: listed again."""
        await self._keep_listed()
        for req in list(self.requests.values()):
            if not req.claim_id or req.claim_id in self.orch.claims or req.kind == RequestKind.POST_REVIEW:
                continue
            if (approved := await self._auto_approve(req)) is not req:
                self._remember(approved)
                continue
            status = await self.bb.redis.hget(self.keys.claim(req.claim_id), "status")
            if status and ClaimStatus(str(status)).is_open:
                continue
            state = str(status) if status else "gone"
            with contextlib.suppress(HoltError):
                self._remember(await self.store.cancel(req.id, f"claim {req.claim_id} is {state}"))

    async def _keep_listed(self) -> None:
        """An agent's user may write the request hashes and indexes: every request this orchestrator holds open is
        re-read (an unproven closure written without an event is noticed and reported here), and one that still
        counts as open but is missing from ``hitl:open`` or ``hitl:active`` is put back, so ``holt questions`` and
        ``holt pending`` list it and a restart finds it."""
        ids = [r.id for r in self.requests.values() if r.is_open]
        if ids:
            await self._relist([r for r in await self.store.get_many(ids) if r.is_open])

    async def _relist(self, still: list[HitlRequest]) -> None:
        """Put requests that count as open back into ``hitl:open`` and ``hitl:active`` where they are missing."""
        if not still:
            return
        async with self.bb.redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(self.keys.hitl_open, [r.id for r in still])
            pipe.zmscore(self.keys.hitl_active, [r.id for r in still])
            listed, active = await pipe.execute()
        for req, in_open, in_active in zip(still, listed, active, strict=True):
            if in_open is not None and in_active is not None:
                continue
            tx = Tx().require_field(self.keys.hitl_request(req.id), "rev", str(req.rev))
            tx.zadd(self.keys.hitl_open, req.created_ms, req.id).zadd(self.keys.hitl_active, req.created_ms, req.id)
            result, _ = await self.bb.audit.commit(tx, operator=SYSTEM_ORCHESTRATOR, action="open_request_relisted",
                                                   subject=req.id, details={"rev": req.rev})
            if result.ok:
                self.orch.log.error("open_request_relisted", request_id=req.id)


def _releases_plan(req: HitlRequest) -> bool:
    """A tool-declared plan artefact whose approval is decided in its favour: from now on a normal artefact."""
    return req.kind == RequestKind.APPROVAL and req.source == GateSource.TOOL and bool(req.artefact_id) \
        and _approves(req)


def _approves(req: HitlRequest) -> bool:
    if req.status in (RequestStatus.APPROVED, RequestStatus.BYPASSED):
        return True
    return req.status == RequestStatus.EXPIRED and req.on_expire == "approve"


class ApprovalGate:
    """Approval gates in front of whatever decision gate the orchestrator was given (breakpoints)."""

    def __init__(self, coordinator: HitlCoordinator, inner: DecisionGate) -> None:
        self.coordinator = coordinator
        self.inner = inner

    async def admit(self, decision: Decision) -> bool:
        if decision.kind in _GRANT_KINDS and not await self.coordinator.grant_allowed(decision):
            return False
        return await self.inner.admit(decision)


__all__ = ["ApprovalGate", "Disposition", "HitlCoordinator", "Tx"]
