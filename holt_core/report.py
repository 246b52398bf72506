"""``holt report``: the success figures of the human-in-the-loop design, computed from the audit trail.

The figures cover the requests *created* in the period (a cohort, so a slow decision still counts against the
period that asked for it); escalations, expiries and answers are counted the same way. ``fold`` is a pure function
of the audit records (plus each request's deadline, which the request record holds) and is tested on a scripted
history; ``load_report`` only reads.

Percentiles are nearest-rank: p50 of [1, 2, 3, 4] is 2, p95 of 20 values is the 19th.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from holt_core.audit import AuditRecord
from holt_core.blackboard import Blackboard
from holt_core.errors import InvalidInput
from holt_core.identity import SYSTEM_TIMEOUT, is_human_role
from holt_core.timespec import parse_time_spec

HUMAN_DECISIONS = ("approved", "rejected", "bypassed")
_DAYS = re.compile(r"^(\d+)([dw])$")


def since_ms(text: str, now_ms: int) -> int:
    """``7d``, ``2w``, a Go duration (``36h``) or an RFC 3339 time."""
    match = _DAYS.match(text.strip())
    if match:
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        return now_ms - days * 86_400_000
    return parse_time_spec(text, now_ms, flag="--since")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class ApprovalTimes(BaseModel):
    risk: str
    decided: int
    p50_s: float | None
    p95_s: float | None


class HitlReport(BaseModel):
    since_ms: int
    until_ms: int
    approvals_requested: int
    approvals_auto_approved: int
    approval_time_by_risk: list[ApprovalTimes]
    gates_closed: int  # decided by a person, or expired
    gates_decided_before_deadline: int
    share_decided_before_deadline: float | None
    escalations_by_level: dict[str, int]
    questions_escalated_to_people: int
    expiries: dict[str, int]
    decisions: int
    bypasses: int
    bypass_share: float | None
    post_reviews_open: int
    questions_asked: int
    questions_answered_by_peers: int
    questions_answered_by_people: int
    questions_answered_by_default: int
    questions_open: int


@dataclass
class _Request:
    kind: str
    created_ms: int
    risk: str = ""
    outcome: str = ""
    decided_ms: int = 0
    decided_by: str = ""
    post_review_id: str = ""
    on_expire: str = ""
    escalations: list[int] = field(default_factory=list)
    to_people: bool = False  # a question first asked to agents that moved on to people


def _details(record: AuditRecord) -> dict[str, Any]:
    return record.details if isinstance(record.details, dict) else {}


def fold(records: Iterable[AuditRecord], deadlines: dict[str, int], since: int, until: int) -> HitlReport:
    """The report of the requests created in [since, until], from the whole trail (decisions may come later)."""
    requests: dict[str, _Request] = {}
    closed_reviews: set[str] = set()
    for rec in records:
        d = _details(rec)
        rid = str(d.get("request_id") or rec.subject)
        action = rec.action
        if action == "question_asked":
            requests[rid] = _Request("question", rec.ts_ms)
        elif action in ("approval_requested", "approval_auto_approved"):
            requests[rid] = _Request("approval", rec.ts_ms, risk=str(d.get("risk", "")))
            if action == "approval_auto_approved":
                requests[rid].outcome, requests[rid].decided_ms = "auto", rec.ts_ms
        elif action == "post_review_closed":
            closed_reviews.add(rid)
        req = requests.get(rid)
        if req is None or action in ("question_asked", "approval_requested", "approval_auto_approved"):
            continue
        if action in (*HUMAN_DECISIONS, "expired", "question_answered") and not req.outcome:
            req.outcome, req.decided_ms, req.decided_by = action, rec.ts_ms, rec.operator
            req.post_review_id = str(d.get("post_review_id", ""))
            req.on_expire = str(d.get("on_expire", ""))
        elif action == "escalated":
            req.escalations.append(int(d.get("level", 0) or 0))
        elif action == "question_escalated" and str(d.get("to", "")) == "human":
            req.to_people = True

    cohort = {rid: r for rid, r in requests.items() if since <= r.created_ms <= until}
    approvals = [r for r in cohort.values() if r.kind == "approval"]
    questions = [r for r in cohort.values() if r.kind == "question"]
    by_risk: dict[str, list[float]] = {}
    for r in approvals:
        if r.outcome in HUMAN_DECISIONS:
            by_risk.setdefault(r.risk, []).append((r.decided_ms - r.created_ms) / 1000)
    times = [ApprovalTimes(risk=risk, decided=len(v), p50_s=percentile(v, 50), p95_s=percentile(v, 95))
             for risk, v in sorted(by_risk.items())]
    closed = [(rid, r) for rid, r in cohort.items() if r.kind == "approval" and r.outcome in (*HUMAN_DECISIONS,
                                                                                               "expired")]
    in_time = sum(1 for rid, r in closed if r.outcome != "expired"
                  and (not deadlines.get(rid) or r.decided_ms <= deadlines[rid]))
    levels: dict[str, int] = {}
    for r in cohort.values():
        for level in r.escalations:
            levels[str(level)] = levels.get(str(level), 0) + 1
    expiries: dict[str, int] = {}
    for r in cohort.values():
        if r.outcome == "expired":
            expiries[r.kind] = expiries.get(r.kind, 0) + 1
    decisions = [r for r in approvals if r.outcome in (*HUMAN_DECISIONS, "expired")]
    bypasses = [r for r in approvals if r.outcome == "bypassed"]
    answered = [r for r in questions if r.outcome == "question_answered"]
    return HitlReport(
        since_ms=since, until_ms=until,
        approvals_requested=len(approvals),
        approvals_auto_approved=sum(1 for r in approvals if r.outcome == "auto"),
        approval_time_by_risk=times,
        gates_closed=len(closed), gates_decided_before_deadline=in_time,
        share_decided_before_deadline=(in_time / len(closed)) if closed else None,
        escalations_by_level=dict(sorted(levels.items())),
        questions_escalated_to_people=sum(1 for r in questions if r.to_people),
        expiries=dict(sorted(expiries.items())),
        decisions=len(decisions), bypasses=len(bypasses),
        bypass_share=(len(bypasses) / len(decisions)) if decisions else None,
        post_reviews_open=sum(1 for r in bypasses if r.post_review_id and r.post_review_id not in closed_reviews),
        questions_asked=len(questions),
        questions_answered_by_peers=sum(1 for r in answered if not is_human_role(r.decided_by)
                                        and r.decided_by != SYSTEM_TIMEOUT),
        questions_answered_by_people=sum(1 for r in answered if is_human_role(r.decided_by)),
        questions_answered_by_default=sum(1 for r in questions if r.outcome == "expired" and r.on_expire == "default"),
        questions_open=sum(1 for r in questions if not r.outcome),
    )


async def load_report(bb: Blackboard, since: int, until: int) -> HitlReport:
    records: list[AuditRecord] = []
    async for _, fields in bb.audit.entries():
        try:
            records.append(AuditRecord.from_fields(fields))
        except (KeyError, ValueError):
            continue  # an undecodable record is audit verify's business, not the report's
    ids = {str(_details(r).get("request_id") or r.subject) for r in records
           if r.action in ("approval_requested",) and r.ts_ms >= since}
    deadlines: dict[str, int] = {}
    for rid in ids:
        raw = await bb.redis.hget(bb.keys.hitl_request(rid), "record")
        try:
            deadline = int(json.loads(raw).get("deadline_ms") or 0) if raw else 0
        except (ValueError, AttributeError, TypeError):
            deadline = 0
        if deadline:
            deadlines[rid] = deadline
    return fold(records, deadlines, since, until)


def check_since(text: str, now_ms: int) -> int:
    value = since_ms(text, now_ms)
    if value > now_ms:
        raise InvalidInput("--since is in the future")
    return value
