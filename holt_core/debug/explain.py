"""``explain``: a structured answer to "why is this claim (or artefact) not moving?".

Reads only. Each reason names what the claim waits for and, where there is one, who: the agents whose
bids are missing, the granted agents whose output has not arrived (and whether they are running), the
grant queue position, a held or skipped decision, full control, a stopped orchestrator.

Other areas add reasons through ``register_reason_provider`` (an open question or approval, say): a
provider gets the ``ClaimContext`` and returns its reasons.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from holt_core.blackboard import Blackboard
from holt_core.debug.held import HeldDecision
from holt_core.debug.reasons import REASON_PROVIDERS, ClaimContext, Reason, ReasonProvider, register_reason_provider
from holt_core.debug.store import load_state
from holt_core.errors import HoltError, InvalidInput, MalformedRecord, NotFound
from holt_core.lock import is_running
from holt_core.models import Artefact, Claim, ClaimStatus, StructuralType, is_uuid, now_ms
from holt_core.sanitise import sanitise_text

__all__ = ["REASON_PROVIDERS", "ClaimContext", "Explanation", "Reason", "ReasonProvider", "explain",
           "register_reason_provider"]

_CLAIMABLE = (StructuralType.STANDARD, StructuralType.QUESTION, StructuralType.ANSWER)
_CLOCK_MARGIN_MS = 10_000


class Explanation(BaseModel):
    asked: str
    claim_id: str | None = None
    artefact_id: str | None = None
    status: str | None = None
    moving: bool
    summary: str
    reasons: list[Reason]


def _load_builtin_providers() -> None:
    # Imported when first needed (the HITL reasons register themselves in holt_core.debug.reasons).
    import holt_core.hitl.explain_reasons  # noqa: F401


async def explain(bb: Blackboard, ident: str) -> Explanation:
    _load_builtin_providers()
    claim_id, artefact_id = await _resolve(bb, ident)
    claim_raw: dict[str, str] = {}
    claim: Claim | None = None
    if claim_id is not None:
        claim_raw = (await bb.hgetall_many([bb.keys.claim(claim_id)]))[0]  # a non-hash reads as {}: malformed
        claim = Claim.from_hash(claim_raw, bb.keys.claim(claim_id))
        artefact_id = claim.artefact_id
    artefact: Artefact | None = None
    if artefact_id is not None:
        try:
            artefact = await bb.get_artefact(artefact_id)
        except (NotFound, MalformedRecord):
            artefact = None
    ctx = ClaimContext(bb=bb, artefact=artefact, claim=claim, claim_raw=claim_raw,
                       debug=await load_state(bb.redis, bb.keys))
    reasons = await (_claim_reasons(ctx) if claim is not None else _artefact_reasons(ctx, artefact_id or ident))
    for provider in REASON_PROVIDERS:
        reasons.extend(await provider(ctx))
    if claim is None or claim.status.is_open:
        reasons.extend(await _orchestrator_reasons(bb))
    reasons = [r.model_copy(update={"message": sanitise_text(r.message)}) for r in reasons]
    blocking = [r for r in reasons if r.blocking]
    summary = blocking[0].message if blocking else (reasons[0].message if reasons else "nothing to report")
    return Explanation(asked=ident, claim_id=claim.id if claim else None, artefact_id=artefact_id,
                       status=claim.status.value if claim else None, moving=not blocking, summary=summary,
                       reasons=reasons)


async def _resolve(bb: Blackboard, ident: str) -> tuple[str | None, str | None]:
    """(claim id, artefact id): a claim id, an artefact id, or a unique prefix of either."""
    text = ident.strip().lower()
    if not text:
        raise InvalidInput("a claim or artefact id is required")
    if is_uuid(text):
        if await bb.redis.exists(bb.keys.claim(text)):
            return text, None
        if await bb.artefact_exists(text):
            return await bb.claim_id_for_artefact(text), text
        raise NotFound(f"no claim or artefact with ID '{ident}'")
    claims = sorted([c async for c in bb.scan_claim_ids() if c.startswith(text)]) if len(text) >= 6 else []
    try:
        artefact_id: str | None = await bb.resolve_artefact_id(text)
    except NotFound:
        artefact_id = None
    if claims and artefact_id is None and len(claims) == 1:
        return claims[0], None
    if artefact_id is not None and not claims:
        return await bb.claim_id_for_artefact(artefact_id), artefact_id
    if claims or artefact_id is not None:
        raise InvalidInput(f"'{ident}' matches more than one claim or artefact", hint="use a longer prefix",
                           details=[*claims[:10], *([artefact_id] if artefact_id else [])])
    raise NotFound(f"no claim or artefact with ID '{ident}'")


def _debug_reasons(ctx: ClaimContext, subjects: set[str]) -> list[Reason]:
    out: list[Reason] = []
    held: list[HeldDecision] = [h for h in ctx.debug.held_list()
                                if h.subject in subjects or h.decision.claim_id in subjects]
    for h in held:
        state = (f"released ({h.release}) by {h.released_by}, waiting for the orchestrator to carry it out"
                 if h.release else "waiting for holt debug step / continue / skip")
        out.append(Reason(kind="held", message=f"held: {h.explain()}; {state}",
                          waiting_for=[h.released_by or "operator"],
                          details={"held": h.model_dump(mode="json")}))
    for subject in subjects & set(ctx.debug.skipped):
        out.append(Reason(kind="skipped", message="its next decision was skipped by an operator: it stays as it is "
                          "until something about it changes (or it is terminated)",
                          waiting_for=["operator"], details={"signature": ctx.debug.skipped[subject]}))
    if ctx.debug.mode.full_control and not held:
        out.append(Reason(kind="full_control", message=f"the instance is under full control "
                          f"({ctx.debug.mode.reason or 'paused'} by {ctx.debug.mode.by}): every decision waits",
                          waiting_for=["operator"], details=ctx.debug.mode.model_dump()))
    return out


async def _roster(bb: Blackboard) -> tuple[list[str] | None, int | None]:
    raw = await bb.redis.hgetall(bb.keys.debug_roster)
    try:
        agents = json.loads(raw["agents"]) if raw.get("agents") else None
        timeout = int(raw["bid_timeout_ms"]) if raw.get("bid_timeout_ms") else None
    except (ValueError, KeyError):
        return None, None
    return ([str(a) for a in agents] if isinstance(agents, list) else None), timeout


async def _exec_state(bb: Blackboard, claim_id: str, agent: str) -> str:
    value = await bb.redis.get(bb.keys.exec_lease(claim_id, agent))
    if value is None:
        return "not started (is its agent running?)"
    text = str(value)
    if text.startswith("running"):
        return "running its tool now"
    return "finished (its result is being recorded)"


async def _outputs_since(bb: Blackboard, target_id: str, since_ms: int) -> list[Artefact]:
    ids = await bb.redis.zrangebyscore(bb.keys.artefact_index, since_ms - _CLOCK_MARGIN_MS, "+inf")
    found = await bb.get_artefacts([str(i) for i in ids])
    return [a for a in found if a is not None and target_id in a.source_artefacts]


async def _claim_reasons(ctx: ClaimContext) -> list[Reason]:
    bb, claim = ctx.bb, ctx.claim
    assert claim is not None
    note = ctx.claim_raw.get("holt_note", "")
    if claim.status == ClaimStatus.COMPLETE:
        return [Reason(kind="closed", message="the claim is complete", blocking=False)]
    if claim.status == ClaimStatus.TERMINATED:
        return [Reason(kind="closed", message=f"the claim was terminated: {claim.termination_reason or 'no reason'}",
                       blocking=False)]
    if note.startswith("dormant"):
        return [Reason(kind="dormant", message=f"the claim is dormant ({note.removeprefix('dormant: ')}): no agent "
                       "wants its next phase", blocking=False)]
    reasons = _debug_reasons(ctx, {claim.id, claim.artefact_id})
    ps = claim.phase_state
    if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
        agent = claim.granted_exclusive_agent
        reasons.append(Reason(kind="waiting_for_rework", waiting_for=[agent],
                              message=f"feedback claim: waiting for {agent} to write the new version; "
                              f"{agent} is {await _exec_state(bb, claim.id, agent)}"))
    elif claim.grant_queue is not None:
        role = claim.grant_queue.agent_name
        rank: Any = await bb.redis.zrank(bb.keys.grant_queue(role), claim.id)
        length = await bb.redis.zcard(bb.keys.grant_queue(role))
        position = f"position {int(rank) + 1} of {length}" if rank is not None else "not found in the queue"
        reasons.append(Reason(kind="grant_queue", waiting_for=[role], details={"position": rank, "length": length},
                              message=f"waiting in {role}'s grant queue ({position}): all its workers are busy"))
    elif ps is None:
        agents, timeout_ms = await _roster(bb)
        bids = await bb.get_bids(claim.id)
        created = int(ctx.claim_raw.get("holt_created_at_ms") or 0)
        if agents is None:
            reasons.append(Reason(kind="waiting_for_bids", details={"bids": bids},
                                  message=f"waiting for bids ({len(bids)} in); the agent list is unknown until "
                                  "an orchestrator has run"))
        else:
            missing = [a for a in agents if a not in bids]
            if missing:
                left = ""
                if created and timeout_ms is not None:
                    remaining = created + timeout_ms - now_ms()
                    left = (f"; the bid timeout counts them as ignore in {remaining // 1000} s" if remaining > 0
                            else "; the bid timeout has passed (the orchestrator counts them as ignore)")
                reasons.append(Reason(kind="waiting_for_bids", waiting_for=missing,
                                      details={"bids": bids, "missing": missing},
                                      message=f"waiting for bids from {', '.join(missing)} "
                                      f"({len(bids)} of {len(agents)} in){left}"))
            else:
                reasons.append(Reason(kind="consensus_reached", blocking=False, details={"bids": bids},
                                      message="every agent has bid; the orchestrator grants the next phase"))
    else:
        outputs = await _outputs_since(bb, claim.artefact_id, ps.start_time_ms)
        done = {a.produced_by_role for a in outputs}
        waiting = [r for r in ps.granted_agents if r not in done]
        if waiting:
            states = [f"{r} is {await _exec_state(bb, claim.id, r)}" for r in waiting]
            reasons.append(Reason(kind="waiting_for_output", waiting_for=waiting,
                                  details={"phase": ps.current.value, "granted": ps.granted_agents,
                                           "received_from": sorted(done & set(ps.granted_agents))},
                                  message=f"{ps.current.value} phase: waiting for output from "
                                  f"{', '.join(waiting)} ({'; '.join(states)})"))
        else:
            reasons.append(Reason(kind="phase_complete", blocking=False,
                                  message=f"{ps.current.value} phase: every granted agent has delivered; the "
                                  "orchestrator moves it on"))
    return reasons


async def _artefact_reasons(ctx: ClaimContext, artefact_id: str) -> list[Reason]:
    art = ctx.artefact
    if art is None:
        return [Reason(kind="unreadable", message=f"artefact {artefact_id} cannot be read")]
    if art.structural_type not in _CLAIMABLE:
        what = {StructuralType.TERMINAL: "it ends its workflow", StructuralType.REVIEW: "it is a review",
                StructuralType.FAILURE: "it records a failure"}.get(art.structural_type, "")
        return [Reason(kind="not_claimable", blocking=False,
                       message=f"{art.structural_type.value} artefacts get no claim: {what}")]
    reasons = _debug_reasons(ctx, {art.id})
    if not reasons:
        reasons.append(Reason(kind="no_claim", message="no claim yet: the orchestrator creates one when it sees the "
                              "artefact"))
    return reasons


async def _orchestrator_reasons(bb: Blackboard) -> list[Reason]:
    try:
        running = await is_running(bb.redis, bb.keys)
    except HoltError:
        running = True
    if running:
        return []
    return [Reason(kind="orchestrator_down", waiting_for=["orchestrator"],
                   message="no orchestrator is running for this instance (holt up starts one)")]
