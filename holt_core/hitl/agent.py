"""The agent runner's side of human-in-the-loop: questions and declared actions in tool output,
answering peer questions, and the Q&A a re-run sees in its context chain.
"""

from __future__ import annotations

from typing import Any

from holt_core.blackboard import Blackboard
from holt_core.config import Config
from holt_core.errors import HoltError, InvalidInput
from holt_core.hitl.models import GateSource, HitlRequest, RequestKind, RequestStatus, plan_digest
from holt_core.hitl.policy import RISK_ORDER
from holt_core.hitl.requests import RequestStore
from holt_core.models import Artefact, Claim, ClaimStatus, StructuralType, new_id
from holt_core.tool_runner import ToolResult

_LINEAGE_LEVELS = 32


def is_peer_claim(claim: Claim, target: Artefact) -> bool:
    """A direct assignment of someone else's question to this agent."""
    return claim.status == ClaimStatus.PENDING_ASSIGNMENT and target.structural_type == StructuralType.QUESTION


class AgentHitl:
    def __init__(self, bb: Blackboard, config: Config, agent_name: str) -> None:
        self.bb = bb
        self.config = config
        self.name = agent_name
        self.store = RequestStore(bb, config.hitl)

    # ================================================================== what a (re-)run sees

    async def context_additions(self, claim: Claim) -> list[Artefact]:
        """Questions this agent asked on this claim with their answers, and decisions on its declared actions.

        Reading an answer consumes it (it can no longer be amended).
        """
        ids = [str(i) for i in await self.bb.redis.smembers(self.bb.keys.hitl_claim(claim.id))]
        if not ids:
            return []
        wanted: list[str] = []
        for req in sorted(await self.store.get_many(ids), key=lambda r: r.created_ms):
            if req.role != self.name or req.is_open:
                continue
            if req.kind == RequestKind.QUESTION and req.answer is not None:
                if not req.consumed_ms:
                    req = await self.store.consume(req.id)
                assert req.answer is not None
                wanted += [req.artefact_id, req.answer.artefact_id]
            elif req.kind == RequestKind.APPROVAL and req.source == GateSource.TOOL and req.decision_artefact_id:
                wanted += [req.artefact_id, req.decision_artefact_id]
        found = [a for a in await self.bb.get_artefacts(list(dict.fromkeys(wanted))) if a is not None]
        return sorted(found, key=lambda a: (a.created_at_ms, a.id))

    # ================================================================== tool results

    async def handle_result(self, claim: Claim, target: Artefact, result: ToolResult) -> Artefact | None:
        """Write a result the HITL engine owns; None when it is ordinary output for the pup to write."""
        if is_peer_claim(claim, target):
            return await self._peer_result(claim, target, result)
        if result.structural_type == StructuralType.QUESTION:
            return await self._ask(claim, target, result)
        declared = result.extra.get("requires_approval")
        if declared is not None:
            return await self._declare(claim, target, result, declared)
        return None

    async def _ask(self, claim: Claim, target: Artefact, result: ToolResult) -> Artefact:
        ask = result.extra.get("ask", "human")
        if not isinstance(ask, str) or not (ask in ("human", "producer") or ask.startswith(("role:", "producer:"))):
            raise InvalidInput(f'invalid "ask": {str(ask)[:80]!r} (use "human", "producer" or "role:<name>")')
        ident = new_id()
        # Always a new artefact: a Question is never a rework of the target, even on a feedback claim.
        question = Artefact(id=ident, logical_id=ident, version=1, structural_type=StructuralType.QUESTION,
                            type=result.artefact_type, payload=result.artefact_payload, source_artefacts=[target.id],
                            produced_by_role=self.name)
        route = await self._route_for(ask, target)
        requester = await self.store.requester(claim.id, self.name, target)
        req = await self.store.ask(requester, question, ask=ask, route=route)
        return (await self.bb.get_artefacts([req.artefact_id]))[0] or question

    async def _route_for(self, ask: str, target: Artefact) -> list[str]:
        """Agents to ask before a human: the named role or the producer, then the producers up the lineage."""
        agents = self.config.agents
        chain: list[str] = []
        if ask.startswith("role:"):
            chain.append(ask[len("role:"):])
        start = target
        if ask.startswith("producer:"):
            named = (await self.bb.get_artefacts([ask[len("producer:"):]]))[0] if len(ask) > 9 else None
            if named is None:
                raise InvalidInput(f"ask names artefact {ask[9:]!r}, which does not exist")
            start = named
        if ask != "human":
            current: Artefact | None = start
            for _ in range(_LINEAGE_LEVELS):
                if current is None:
                    break
                chain.append(current.produced_by_role)
                if not current.source_artefacts:
                    break
                current = (await self.bb.get_artefacts([current.source_artefacts[0]]))[0]
        out: list[str] = []
        for role in chain:
            if role in agents and role != self.name and role not in out:
                out.append(role)
        return out

    async def _declare(self, claim: Claim, target: Artefact, result: ToolResult, declared: Any) -> Artefact:
        if not isinstance(declared, dict):
            raise InvalidInput("requires_approval must be an object with action, target, plan and risk")
        action = str(declared.get("action") or "")
        if not action:
            raise InvalidInput("requires_approval.action is required")
        what = str(declared.get("target") or "")
        plan = declared.get("plan")
        asked = declared.get("risk")
        if asked is not None and asked not in RISK_ORDER:
            raise InvalidInput(f"requires_approval.risk must be one of {', '.join(RISK_ORDER)}, got {asked!r}")
        by_rule = self.config.hitl.risk_for(artefact_type=result.artefact_type, produced_by=self.name, action=action)
        # The stricter of what the tool says and what the policy says; a declared action is never ungated.
        levels = [r for r in (asked, by_rule) if r is not None] or ["high"]
        risk = max(levels, key=RISK_ORDER.index)
        ident = new_id()
        artefact = Artefact(id=ident, logical_id=ident, version=1, structural_type=result.structural_type,
                            type=result.artefact_type, payload=result.artefact_payload, source_artefacts=[target.id],
                            produced_by_role=self.name)
        if claim.status == ClaimStatus.PENDING_ASSIGNMENT:  # a rework keeps its thread, as the pup writes it
            artefact = artefact.model_copy(update={
                "logical_id": target.logical_id, "version": target.version + 1, "type": target.type,
                "source_artefacts": [target.id, *claim.additional_context_ids]})
        artefact, tx = self.bb.artefact_tx(artefact, add_to_thread=True)
        requester = await self.store.requester(claim.id, self.name, target)
        await self.store.request_approval(
            requester, source=GateSource.TOOL, risk=risk, artefact=artefact, action=action, target=what, plan=plan,
            digest=plan_digest(action, what, plan, artefact.payload), dedupe=f"tool:{artefact.id}", extra=tx,
            decide=False)  # the agent's user cannot prove a system decision: the orchestrator auto-approves
        return artefact

    # ================================================================== peer questions

    async def _request_of(self, question: Artefact) -> HitlRequest | None:
        request_id = await self.store.request_for_artefact(question.id)
        return await self.store.get(request_id) if request_id else None

    async def _peer_result(self, claim: Claim, question: Artefact, result: ToolResult) -> Artefact:
        req = await self._request_of(question)
        if req is None:
            raise HoltError(f"question {question.id} has no request")
        hop = len(req.hops) - 1
        if result.structural_type == StructuralType.ANSWER:
            try:
                done = await self.store.answer(req.id, result.artefact_payload, by=self.name, agent=True,
                                               caller_request_id=f"peer:{claim.id}")
            except HoltError as exc:
                return await self._peer_failure(claim, question, f"could not answer: {exc.message}")
            if done.answer is not None and done.status == RequestStatus.ANSWERED:
                answer = (await self.bb.get_artefacts([done.answer.artefact_id]))[0]
                if answer is not None:
                    return answer
            return await self._peer_failure(claim, question, "answered elsewhere first")
        note = result.artefact_payload if result.structural_type == StructuralType.QUESTION else \
            f"returned {result.structural_type.value} {result.artefact_type} instead of an Answer"
        await self.store.move_up(req.id, from_hop=hop, outcome="cannot_answer", note=note, operator=self.name)
        return await self._peer_failure(claim, question, f"cannot answer: {note}")

    async def peer_failed(self, claim: Claim, question: Artefact, reason: str) -> None:
        """The peer's tool failed: the question moves up the chain at once instead of waiting for its timeout."""
        req = await self._request_of(question)
        if req is not None and req.current_hop is not None and req.current_hop.claim_id == claim.id:
            await self.store.move_up(req.id, from_hop=len(req.hops) - 1, outcome="failed", note=reason,
                                     operator=self.name)

    async def _peer_failure(self, claim: Claim, question: Artefact, reason: str) -> Artefact:
        ident = new_id()
        failure = Artefact(id=ident, logical_id=ident, version=1, structural_type=StructuralType.FAILURE,
                           type="PeerCannotAnswer", payload=reason, source_artefacts=[question.id],
                           produced_by_role=self.name)
        return await self.bb.create_artefact(failure)
