"""``holt report``: the HITL success figures from a scripted audit history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from holt_core.blackboard import Blackboard
from holt_core.models import now_ms
from holt_core.report import percentile, since_ms
from tests.clirun import holt

S = 1000
DAY = 86_400 * S


async def append_at(bb: Blackboard, ts_ms: int, operator: str, action: str, request_id: str,
                    **details: Any) -> None:
    """An audit record with a chosen time, chained like any other (audit verify still passes)."""
    head = await bb.audit.head()
    rec = bb.audit.seal(head, operator=operator, action=action, subject=request_id,
                        details={"request_id": request_id, **details}, ts_ms=ts_ms)
    await bb.redis.xadd(bb.keys.audit, rec.to_fields())
    await bb.redis.set(bb.keys.audit_head, f"{rec.seq}:{rec.hash}")


async def script(bb: Blackboard) -> None:
    base = now_ms() - 3 * DAY
    old = now_ms() - 10 * DAY
    for rid, deadline in (("a1", base + 3600 * S), ("a3", base + 3600 * S)):
        await bb.redis.hset(bb.keys.hitl_request(rid), mapping={"record": json.dumps({"deadline_ms": deadline})})
    events: list[tuple[int, str, str, str, dict[str, Any]]] = [
        (old, "coder", "approval_requested", "a7", {"kind": "approval", "risk": "medium"}),  # before the period
        (old + 5 * S, "human:bob", "approved", "a7", {"kind": "approval"}),
        (base, "coder", "approval_requested", "a1", {"kind": "approval", "risk": "high"}),
        (base, "coder", "approval_requested", "a2", {"kind": "approval", "risk": "high"}),
        (base, "coder", "approval_requested", "a3", {"kind": "approval", "risk": "high"}),
        (base, "coder", "approval_requested", "a4", {"kind": "approval", "risk": "low"}),
        (base, "coder", "approval_requested", "a5", {"kind": "approval", "risk": "low"}),
        (base, "system:policy", "approval_auto_approved", "a6", {"kind": "approval", "risk": "none"}),
        (base, "coder", "approval_requested", "a8", {"kind": "approval", "risk": "low"}),
        (base + 30 * S, "human:carol", "bypassed", "a4", {"kind": "approval", "post_review_id": "r1"}),
        (base + 45 * S, "human:carol", "bypassed", "a8", {"kind": "approval", "post_review_id": "r2"}),
        (base + 60 * S, "human:bob", "approved", "a1", {"kind": "approval"}),
        (base + 600 * S, "human:bob", "rejected", "a2", {"kind": "approval"}),
        (base + 1800 * S, "system:timeout", "escalated", "a3", {"kind": "approval", "level": 1}),
        (base + 1800 * S, "system:timeout", "escalated", "a5", {"kind": "approval", "level": 1}),
        (base + 2400 * S, "system:timeout", "escalated", "a5", {"kind": "approval", "level": 2}),
        (base + 3600 * S, "system:timeout", "expired", "a5", {"kind": "approval", "on_expire": "reject"}),
        (base + 7200 * S, "human:dave", "approved", "a3", {"kind": "approval"}),  # after its deadline
        (base + 9000 * S, "human:dave", "post_review_closed", "r2", {"kind": "post_review", "bypassed_request": "a8"}),
        (base, "planner", "question_asked", "q1", {"kind": "question", "assignee": "role:reviewer"}),
        (base + 5 * S, "reviewer", "question_answered", "q1", {"kind": "question"}),
        (base, "planner", "question_asked", "q2", {"kind": "question", "assignee": "role:reviewer"}),
        (base + 60 * S, "system:timeout", "question_escalated", "q2", {"kind": "question", "to": "human"}),
        (base + 120 * S, "human:dave", "question_answered", "q2", {"kind": "question"}),
        (base, "planner", "question_asked", "q3", {"kind": "question", "assignee": "human"}),
        (base + 3600 * S, "system:timeout", "expired", "q3", {"kind": "question", "on_expire": "default"}),
        (base, "planner", "question_asked", "q4", {"kind": "question", "assignee": "human"}),
    ]
    for ts, operator, action, rid, details in events:
        await append_at(bb, ts, operator, action, rid, **details)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([4, 1, 3, 2], 50) == 2
    assert percentile([float(i) for i in range(1, 21)], 95) == 19
    assert since_ms("7d", 10 * DAY) == 3 * DAY and since_ms("1w", 10 * DAY) == 3 * DAY
    assert since_ms("36h", 10 * DAY) == 10 * DAY - 36 * 3600 * S


async def test_report_figures_on_a_scripted_history(bb: Blackboard, cli_env: dict[str, str], tmp_path: Path) -> None:
    await script(bb)
    rc, out, err = await holt(cli_env, "report", "--name", bb.instance, "--since", "7d", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["instance"] == bb.instance
    assert r["approvals_requested"] == 7 and r["approvals_auto_approved"] == 1
    assert r["approval_time_by_risk"] == [
        {"risk": "high", "decided": 3, "p50_s": 600.0, "p95_s": 7200.0},
        {"risk": "low", "decided": 2, "p50_s": 30.0, "p95_s": 45.0},
    ]
    assert (r["gates_closed"], r["gates_decided_before_deadline"]) == (6, 4)
    assert abs(r["share_decided_before_deadline"] - 4 / 6) < 1e-9
    assert r["escalations_by_level"] == {"1": 2, "2": 1}
    assert r["expiries"] == {"approval": 1, "question": 1}
    assert (r["decisions"], r["bypasses"], r["post_reviews_open"]) == (6, 2, 1)
    assert abs(r["bypass_share"] - 2 / 6) < 1e-9
    assert (r["questions_asked"], r["questions_answered_by_peers"], r["questions_answered_by_people"],
            r["questions_answered_by_default"], r["questions_escalated_to_people"], r["questions_open"]) == \
        (4, 1, 1, 1, 1, 1)
    rc, out, err = await holt(cli_env, "report", "--name", bb.instance)
    text = out.decode()
    assert rc == 0, err
    assert "Approvals: 7 requested (1 approved automatically)" in text
    assert "    high          3 decided   p50  10m 00s   p95   2h 00m" in text
    assert "Decided before the deadline: 4 of 6 (67%)" in text
    assert "Bypasses: 2 of 6 (33%) of decisions; 1 post-review(s) still open" in text
    assert "Escalations: level 1: 2, level 2: 1" in text
    assert "answered by peers 1, by people 1, by the default on expiry 1" in text
    # A shorter period leaves the older requests out.
    rc, out, _ = await holt(cli_env, "report", "--name", bb.instance, "--since", "1d", "--json")
    assert rc == 0 and json.loads(out)["approvals_requested"] == 0
    rc, _, err = await holt(cli_env, "report", "--name", bb.instance, "--since", "soon")
    assert rc == 1 and "invalid" in err.lower() and "Traceback" not in err
    verify_rc, _, verify_err = await holt(cli_env, "audit", "verify", "--name", bb.instance)
    assert verify_rc == 0, verify_err
