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
from holt_core.claim_stage import (
    OUTPUT_CLOCK_MARGIN_MS,
    ClaimFacts,
    Stage,
    claim_stage,
    delivered_roles,
    is_dormant,
)
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


class Explanation(BaseModel):
    asked: str
    claim_id: str | None = None
    artefact_id: str | None = None
    status: str | None = None
    # Where the claim stands (holt_core/claim_stage.py): the same derivation holt-tui's badges, header counts and
    # inspector use, so the two never disagree.
    state: str = Stage.UNCLAIMED.value
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
    stage = claim_stage(await _facts(ctx, artefact_id, reasons))
    # The reason that says where it stands comes first: it is the summary (and the TUI's first line).
    headline = [r for r in reasons if r.kind in _HEADLINE.get(stage, ()) or
                (stage == Stage.WAITING and r.kind.startswith("open_"))][:1]
    reasons = headline + [r for r in reasons if r not in headline]
    blocking = [r for r in reasons if r.blocking]
    first = headline[0] if headline else (blocking[0] if blocking else (reasons[0] if reasons else None))
    summary = first.message if first is not None else "nothing to report"
    return Explanation(asked=ident, claim_id=claim.id if claim else None, artefact_id=artefact_id,
                       status=claim.status.value if claim else None, state=stage.value, moving=not blocking,
                       summary=summary, reasons=reasons)


_HEADLINE: dict[Stage, tuple[str, ...]] = {
    Stage.DONE: ("closed",), Stage.TERMINATED: ("closed",), Stage.DORMANT: ("dormant",), Stage.HELD: ("held",),
    Stage.REWORK: ("waiting_for_rework",), Stage.QUEUED: ("grant_queue",), Stage.WORKING: ("waiting_for_output",),
    Stage.BIDDING: ("waiting_for_bids",), Stage.ADVANCING: ("phase_complete", "consensus_reached"),
}


async def _facts(ctx: ClaimContext, artefact_id: str | None, reasons: list[Reason]) -> ClaimFacts:
    """The facts ``claim_stage`` reads, from Redis (holt-tui fills the same ones from its model)."""
    claim = ctx.claim
    held = any(h.release is None and ((claim is not None and h.decision.claim_id == claim.id)
                                      or (artefact_id is not None and h.decision.artefact_id == artefact_id))
               for h in ctx.debug.held.values())
    waiting = any(r.kind.startswith("open_") for r in reasons)
    if claim is None:
        return ClaimFacts(status=None, held=held, waiting_for_person=waiting)
    ps = claim.phase_state
    delivered: frozenset[str] = frozenset()
    all_bid = False
    if ps is not None:
        outputs = await _outputs_since(ctx.bb, claim.artefact_id, ps.start_time_ms)
        delivered = delivered_roles(ps.granted_agents, ((a.produced_by_role, a.structural_type, a.created_at_ms)
                                                        for a in outputs), ps.start_time_ms)
    else:
        agents, _ = await _roster(ctx.bb)
        if agents is not None:
            bids = await ctx.bb.get_bids(claim.id)
            all_bid = all(a in bids for a in agents)
    return ClaimFacts(status=claim.status, note=ctx.claim_raw.get("holt_note", ""), held=held,
                      waiting_for_person=waiting, queued=_queued(claim), in_phase=ps is not None,
                      granted=tuple(ps.granted_agents) if ps else (), delivered=delivered, all_bid=all_bid)


def _queued(claim: Claim) -> bool:
    return claim.grant_queue is not None and bool(claim.grant_queue.agent_name)


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
    ids = await bb.redis.zrangebyscore(bb.keys.artefact_index, since_ms - OUTPUT_CLOCK_MARGIN_MS, "+inf")
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
    if is_dormant(claim.status, note):
        return [Reason(kind="dormant", message=f"the claim is dormant ({note.removeprefix('dormant: ')}): no agent "
                       "wants its next phase", blocking=False)]
    reasons = _debug_reasons(ctx, {claim.id, claim.artefact_id})
    ps = claim.phase_state
    if claim.status == ClaimStatus.PENDING_ASSIGNMENT:
        agent = claim.granted_exclusive_agent
        reasons.append(Reason(kind="waiting_for_rework", waiting_for=[agent],
                              message=f"feedback claim: waiting for {agent} to write the new version; "
                              f"{agent} is {await _exec_state(bb, claim.id, agent)}"))
    elif claim.grant_queue is not None and _queued(claim):
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
        done = delivered_roles(ps.granted_agents, ((a.produced_by_role, a.structural_type, a.created_at_ms)
                                                   for a in outputs), ps.start_time_ms)
        asked = {a.produced_by_role for a in outputs if a.structural_type == StructuralType.QUESTION}
        waiting = [r for r in ps.granted_agents if r not in done]
        if waiting:
            states = [f"{r} asked a question and waits for its answer" if r in asked
                      else f"{r} is {await _exec_state(bb, claim.id, r)}" for r in waiting]
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
