"""Metrics derived from events (pure: no Redis), and the instance figures read from Redis at scrape time."""

from __future__ import annotations

import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from holt_core.blackboard import Blackboard
from holt_core.metrics import EventMetrics
from holt_core.models import now_ms


def sample(m: EventMetrics, name: str, **labels: str) -> float:
    text = m.exposition().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_events_become_counters_and_durations() -> None:
    m = EventMetrics("orchestrator", "inst")
    events = [
        (0.0, "claim_created", {"claim_id": "c1", "status": "pending_review"}),
        (0.5, "bid_received", {"claim_id": "c1", "agent_name": "A", "bid_type": "review"}),
        (1.0, "review_phase_granted", {"claim_id": "c1", "agents": ["A"]}),
        (4.0, "exclusive_phase_granted", {"claim_id": "c1", "agents": ["B"]}),
        (5.0, "decision_held", {"claim_id": "c1", "kind": "complete"}),
        (65.0, "held_decision_carried_out", {"claim_id": "c1", "kind": "complete"}),
        (70.0, "claim_complete", {"claim_id": "c1", "status": "complete"}),
        (71.0, "claim_created", {"claim_id": "c2", "status": "pending_exclusive"}),
        (72.0, "claim_terminated", {"claim_id": "c2", "status": "terminated"}),
        (73.0, "feedback_claim_created", {"feedback_claim_id": "f"}),
        (74.0, "tool_started", {"claim_id": "c3"}),
        (76.5, "tool_failed", {"claim_id": "c3", "reason": "x"}),
        (77.0, "subscription_lost", {}),
        (78.0, "subscription_restored", {}),
    ]
    for at, kind, fields in events:
        m.observe(logging.INFO, {"component": "orchestrator", "event_type": kind, **fields}, at)
    assert sample(m, "holt_claims_created_total") == 2
    assert sample(m, "holt_claims_closed_total", status="complete") == 1
    assert sample(m, "holt_claims_closed_total", status="terminated") == 1
    assert sample(m, "holt_grants_total", phase="exclusive", agent="B") == 1
    assert sample(m, "holt_bid_latency_seconds_sum", agent="A") == 0.5
    assert sample(m, "holt_phase_duration_seconds_sum", phase="review") == 3.0
    assert sample(m, "holt_phase_duration_seconds_sum", phase="exclusive") == 66.0
    assert sample(m, "holt_breakpoint_hold_seconds_sum") == 60.0
    assert sample(m, "holt_feedback_iterations_total") == 1
    assert sample(m, "holt_tool_runs_total", role="orchestrator", outcome="failed") == 1
    assert sample(m, "holt_tool_duration_seconds_sum") == 2.5
    assert sample(m, "holt_redis_errors_total") == 1 and sample(m, "holt_redis_reconnects_total") == 1
    assert sample(m, "holt_log_events_total", event_type="claim_created", level="info") == 2
    assert sample(m, "holt_component_info", component="orchestrator", holt_instance="inst") == 1


def test_audit_records_become_hitl_figures() -> None:
    m = EventMetrics("orchestrator", "inst")
    req = {"kind": "approval", "risk": "high", "created_ms": 1_000}

    def audit(action: str, ts: int, **details: object) -> None:
        m.observe_audit({"action": action, "ts_ms": str(ts), "details": json.dumps(details)}, req)

    audit("approval_requested", 1_000, kind="approval", risk="high")
    audit("escalated", 31_000, kind="approval", level=1)
    audit("bypassed", 61_000, kind="approval")
    audit("expired", 91_000, kind="approval")
    assert sample(m, "holt_hitl_requests_total", kind="approval", risk="high") == 1
    assert sample(m, "holt_hitl_escalations_total", level="1") == 1
    assert sample(m, "holt_hitl_bypasses_total", risk="high") == 1
    assert sample(m, "holt_hitl_expiries_total", kind="approval") == 1
    assert sample(m, "holt_hitl_time_to_decision_seconds_sum", kind="approval", risk="high") == 150.0


async def test_instance_figures_are_read_from_redis(bb: Blackboard) -> None:
    m = EventMetrics("orchestrator", bb.instance)
    now = now_ms()
    for rid, kind, risk, age_s, overdue in (("q1", "question", "", 600, False), ("a1", "approval", "high", 60, True)):
        record = {"kind": kind, "risk": risk, "created_ms": now - age_s * 1000,
                  "deadline_ms": now - 1000 if overdue else 0}
        await bb.redis.hset(bb.keys.hitl_request(rid), mapping={"record": json.dumps(record)})
        await bb.redis.zadd(bb.keys.hitl_open, {rid: now - age_s * 1000})
    await bb.redis.sadd(bb.keys.open_claims, "c1")
    await bb.redis.hset(bb.keys.claim("c1"), mapping={"holt_created_at_ms": str(now - 120_000)})
    await bb.redis.zadd(bb.keys.grant_queue("coder"), {"c2": 1, "c3": 2})
    await m.refresh_instance(bb.redis)
    assert sample(m, "holt_hitl_pending", kind="approval", risk="high") == 1
    assert sample(m, "holt_hitl_pending", kind="question", risk="") == 1
    assert 590 <= sample(m, "holt_hitl_oldest_pending_age_seconds", kind="question") <= 700
    assert sample(m, "holt_hitl_overdue", kind="approval") == 1 and sample(m, "holt_hitl_overdue", kind="question") == 0
    assert sample(m, "holt_claims_open") == 1 and 110 <= sample(m, "holt_claim_oldest_open_age_seconds") <= 200
    assert sample(m, "holt_grant_queue_length", role="coder") == 2
    await bb.redis.zrem(bb.keys.hitl_open, "a1")
    await m.refresh_instance(bb.redis)
    assert sample(m, "holt_hitl_pending", kind="approval", risk="high") == 0
