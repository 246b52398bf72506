"""Injected reviews: a Review artefact by ``human:<operator>`` against any artefact.

An empty ``{}`` (or ``[]``) is an approval that counts in a pending review phase of the target's claim.
Anything else is feedback: the orchestrator starts the feedback loop for the target's producer, even when
the target's claim already completed (re-evaluation), and the producer writes a new version.
The artefact and its audit record are one atomic write.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from holt_core.blackboard import Blackboard
from holt_core.debug.events import DebugEventType, announce
from holt_core.debug.proven import review_proof
from holt_core.errors import HoltError, InvalidInput, MalformedRecord
from holt_core.hitl.proofs import proof_tx
from holt_core.identity import human_role, is_human_role
from holt_core.models import Artefact, ClaimStatus, Phase, StructuralType, feedback_excerpt, is_approval, new_id

MAX_PAYLOAD = 1 << 20


def review_payload(text: str, operator: str) -> str:
    """The payload of a person's review, readable by any agent (docs/debugging.md, "Manual reviews").

    JSON passes as is (``{}`` and ``[]`` approve, as in Holt); anything else is free text and becomes
    ``{"feedback": "<the text>", "by": "human:<operator>"}``.
    """
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return json.dumps({"feedback": text.strip(), "by": human_role(operator)}, ensure_ascii=False)
    return text


class InjectedReview(BaseModel):
    review_id: str
    target_id: str
    approval: bool
    effect: str


async def _configured_agents(bb: Blackboard) -> list[str] | None:
    raw = await bb.redis.hget(bb.keys.debug_roster, "agents")
    if not raw:
        return None
    try:
        agents = json.loads(raw)
    except ValueError:
        return None
    return [str(a) for a in agents] if isinstance(agents, list) else None


async def _pending_review_phase(bb: Blackboard, target_id: str) -> list[str] | None:
    """The reviewers of a review phase in progress on the target, or None."""
    claim_id = await bb.claim_id_for_artefact(target_id)
    if claim_id is None:
        return None
    try:
        claim = await bb.get_claim(claim_id)
    except (HoltError, MalformedRecord):
        return None
    ps = claim.phase_state
    if claim.status != ClaimStatus.PENDING_REVIEW or ps is None or ps.current != Phase.REVIEW:
        return None
    return list(ps.granted_agents)


async def inject_review(bb: Blackboard, operator: str, artefact_ref: str, payload: str = "{}", *,
                        impersonated_by: str = "") -> InjectedReview:
    if not payload.strip():
        raise InvalidInput("the review payload is empty", hint="use {} to approve, or feedback text / JSON")
    if len(payload.encode()) > MAX_PAYLOAD:
        raise InvalidInput("the review payload is larger than 1 MiB")
    payload = review_payload(payload, operator)
    if len(payload.encode()) > MAX_PAYLOAD:
        raise InvalidInput("the review payload is larger than 1 MiB")
    target = await bb.get_artefact(await bb.resolve_artefact_id(artefact_ref))
    if target.structural_type == StructuralType.REVIEW:
        raise InvalidInput(f"artefact {target.id} is itself a Review", hint="review the artefact it reviews")
    if is_human_role(target.produced_by_role):
        raise InvalidInput(f"artefact {target.id} was written by a person ({target.produced_by_role}); "
                           "there is no agent to send a review to")
    approval = is_approval(payload)
    if approval:
        reviewers = await _pending_review_phase(bb, target.id)
        effect = (f"counts as the approval of {', '.join(reviewers)} in the pending review phase" if reviewers
                  else "recorded only: no review phase is pending on this artefact")
    else:
        agents = await _configured_agents(bb)
        if agents is not None and target.produced_by_role not in agents:
            raise InvalidInput(f"its producer {target.produced_by_role!r} is not an agent of this instance",
                               hint="feedback goes back to the agent that produced the artefact")
        latest = await bb.latest_version(target.logical_id)
        if latest is not None and latest[0] != target.id and latest[1] > target.version:
            raise InvalidInput(f"artefact {target.id} is version {target.version}; version {latest[1]} "
                               f"({latest[0]}) is newer", hint="send feedback on the latest version")
        effect = f"feedback: {target.produced_by_role} is asked to rework {target.type} v{target.version}"
    ident = new_id()
    review = Artefact(id=ident, logical_id=ident, version=1, structural_type=StructuralType.REVIEW, type="Review",
                      payload=payload, source_artefacts=[target.id], produced_by_role=human_role(operator))
    review, tx = bb.artefact_tx(review, add_to_thread=True)
    tx = proof_tx(bb.keys, operator, "debug_inject_review", target.id, impersonated_by=impersonated_by).extend(tx)
    # The proof the engine checks before it acts on a person's review (holt_core/debug/proven.py).
    tx.set(*review_proof(bb.keys, review, impersonated_by=impersonated_by))
    announce(tx, bb.keys, DebugEventType.REVIEW_INJECTED, review_id=review.id, target_id=target.id,
             approval=approval, by=operator)
    actor = human_role(operator)
    result, _ = await bb.audit.commit(tx, operator=actor, action="debug_inject_review", subject=target.id, details={
        "review_id": review.id, "approval": approval, "payload_excerpt": feedback_excerpt(payload),
        "target_type": target.type, "target_version": target.version, "producer": target.produced_by_role})
    if not result.ok:
        raise HoltError("the review could not be written; try again")
    return InjectedReview(review_id=review.id, target_id=target.id, approval=approval, effect=effect)
