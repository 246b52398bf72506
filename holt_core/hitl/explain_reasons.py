"""Open questions and approvals as reasons in ``holt explain`` ("why is this claim not moving?")."""

from __future__ import annotations

from holt_core.debug.reasons import ClaimContext, Reason, register_reason_provider
from holt_core.hitl.client import HitlClient
from holt_core.hitl.models import RequestKind


async def open_requests(ctx: ClaimContext) -> list[Reason]:
    claim_id = ctx.claim.id if ctx.claim else ""
    artefact_id = ctx.artefact.id if ctx.artefact else ""
    if not claim_id and not artefact_id:
        return []
    client = await HitlClient.connect(ctx.bb)
    reasons: list[Reason] = []
    for item in await client.open_items():
        if not ((claim_id and item.claim_id == claim_id) or (artefact_id and artefact_id in (item.artefact_id,
                                                                                              item.target))):
            continue
        if item.kind == RequestKind.QUESTION:
            who = item.hops[-1] if item.hops else "a human"
            message = f"waits for an answer to question {item.id[:8]} (asked by {item.requester_role}, now with {who})"
            waiting = [who]
        else:
            message = (f"waits for approval {item.id[:8]} ({item.risk} risk, {item.approvals}/{item.min_approvals} "
                       f"approvals; approvers: {', '.join(item.approver_roles) or 'any operator'})")
            waiting = list(item.approver_roles)
        reasons.append(Reason(kind=f"open_{item.kind.value}", message=message, waiting_for=waiting,
                              details={"request_id": item.id, "deadline_ms": item.deadline_ms}))
    return reasons


register_reason_provider(open_requests)
