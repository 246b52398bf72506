"""What is waiting for people, as the CLI lists it: ``OpenItemView`` and its light read.

``open_item_fields`` is the one definition of an open item (sanitised for display); the pydantic ``OpenItem`` of
``hitl.client`` (the API's type) and the light ``OpenItemView`` are both built from it. ``light_open_items`` reads
the open requests without the models when the published policy and every open request are plain
(``published_policy``, ``request_record``); otherwise it returns None and the caller reads them through
``HitlClient``, so whatever is odd reads exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from holt_core.hitl.kinds import RequestKind
from holt_core.hitl.published_policy import is_plain_policy
from holt_core.hitl.request_record import RequestRecord, plain_open_request
from holt_core.record_basics import now_ms
from holt_core.sanitise import sanitise_text

if TYPE_CHECKING:
    from holt_core.board_reads import BoardReads
    from holt_core.hitl.models import HitlRequest


class OpenItemView(NamedTuple):
    """One thing waiting for a person: the fields (and order) of ``hitl.client.OpenItem``, without pydantic."""

    id: str
    kind: RequestKind
    created_ms: int
    age_s: float
    text: str
    risk: str
    deadline_ms: int
    requester_role: str
    claim_id: str
    workflow_id: str
    started_by: str
    artefact_id: str
    action: str
    target: str
    plan: Any
    digest: str
    approvals: int
    min_approvals: int
    approver_roles: list[str]
    escalation_level: int
    require_justification: bool
    hops: list[str]

    def to_json(self) -> dict[str, Any]:
        """As ``OpenItem.model_dump(mode="json")``."""
        return {**self._asdict(), "kind": self.kind.value}


def open_item_fields(req: HitlRequest | RequestRecord, now: int) -> dict[str, Any]:
    """An open item's fields from a request (the model or the light record), text from Redis sanitised."""
    clean = sanitise_text
    plan = req.plan
    if isinstance(plan, str):
        plan = clean(plan)
    elif plan is not None:
        plan = json.loads(clean(json.dumps(plan, ensure_ascii=False)))
    roles = set(req.approver_roles)
    for step in req.ladder[: req.escalation_level]:
        roles |= set(step.to)
    return {
        "id": req.id, "kind": req.kind, "created_ms": req.created_ms,
        "age_s": max(0.0, (now - req.created_ms) / 1000), "text": clean(req.text), "risk": req.risk,
        "deadline_ms": req.deadline_ms, "requester_role": clean(req.role), "claim_id": req.claim_id,
        "workflow_id": req.workflow_id, "started_by": clean(req.started_by), "artefact_id": req.artefact_id,
        "action": clean(req.action), "target": clean(req.target), "plan": plan, "digest": req.digest,
        "approvals": len(req.distinct_approvers()),
        "min_approvals": req.min_approvals if req.kind == RequestKind.APPROVAL else 0,
        "approver_roles": sorted(roles), "escalation_level": req.escalation_level,
        "require_justification": req.require_justification,
        "hops": [clean(f"{h.to}{' (' + h.outcome + ')' if h.outcome else ''}") for h in req.hops],
    }


def wanted(req: HitlRequest | RequestRecord, kinds: Sequence[RequestKind] | None) -> bool:
    """Whether an open request is listed for people (peer questions still with an agent are not)."""
    if req.kind == RequestKind.QUESTION and not req.for_humans:
        return False
    return kinds is None or req.kind in kinds


async def light_open_items(board: BoardReads, kinds: Sequence[RequestKind] | None) -> list[OpenItemView] | None:
    """The open items, oldest first, read without the models; None when something needs the full read."""
    published = await board.redis.get(board.keys.hitl_policy)
    if not published or not is_plain_policy(str(published)):
        return None  # no published policy (holt.yml decides) or an odd one: the model validates it
    ids = [str(i) for i in await board.redis.zrange(board.keys.hitl_open, 0, -1)]
    rows = await board.hgetall_many([board.keys.hitl_request(i) for i in ids])
    now = now_ms()
    out = []
    for raw in rows:
        if not raw:
            continue  # gone since ZRANGE, or not a hash (reported by hgetall_many)
        req = plain_open_request(raw)
        if req is None:
            return None
        if wanted(req, kinds):
            out.append(OpenItemView(**open_item_fields(req, now)))
    return sorted(out, key=lambda i: (i.created_ms, i.id))
