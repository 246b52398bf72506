"""Prometheus metrics derived from the structured events every component already logs.

Nothing in the engine is instrumented: ``EventMetrics.observe`` is a logs observer (holt_core.logs.add_observer)
that turns ``event_type`` and its fields into counters and histograms. Durations that span two events of the same
process (a phase from its grant to the next grant or the close, a tool run, a held decision) are measured here
from the event pair. Instance-wide figures that live in Redis (HITL requests pending by kind and risk, the oldest
pending, open claims, grant queues) are read at scrape time by the orchestrator (``refresh_instance``); the HITL
decision figures (time to decision, escalations, expiries, bypasses) come from the audit stream, which the
orchestrator's metrics thread follows (``observe_audit``). Every metric is documented in docs/metrics.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from redis.asyncio import Redis

from holt_core.keys import Keys

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_HUMAN_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
_TRACKED = 10_000  # open pairs remembered per kind (bounded memory if a close event never comes)
_SCAN_CAP = 5000  # requests / claims read per scrape at most

_CLOSE_EVENTS = {
    "claim_complete": "complete",
    "claim_terminated": "terminated",
    "claim_terminated_review_feedback": "terminated",
}
_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error"}
_REDIS_TROUBLE = {"subscription_lost", "lock_release_failed", "registry_update_failed", "unregister_failed"}


class _Pairs:
    """Start times keyed by an id, oldest dropped past a bound."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def start(self, key: str, at: float, label: str = "") -> None:
        self._items[key] = (at, label)
        self._items.move_to_end(key)
        while len(self._items) > _TRACKED:
            self._items.popitem(last=False)

    def stop(self, key: str, at: float) -> tuple[float, str] | None:
        item = self._items.pop(key, None)
        if item is None:
            return None
        return max(0.0, at - item[0]), item[1]

    def peek(self, key: str, at: float) -> float | None:
        item = self._items.get(key)
        return None if item is None else max(0.0, at - item[0])


class EventMetrics:
    """The metrics of one process, on a registry of its own (so tests and several components never collide)."""

    def __init__(self, component: str, instance: str) -> None:
        self.component = component
        self.instance = instance
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Gauge("holt_component_info", "Always 1; names the component and the Holt instance.",
                          ["component", "holt_instance"], registry=r)
        self.info.labels(component, instance).set(1)
        self.events = Counter("holt_log_events", "Structured log events, by event type and level.",
                              ["event_type", "level"], registry=r)
        self.claims_created = Counter("holt_claims_created", "Claims created, by initial status.", ["status"],
                                      registry=r)
        self.claims_closed = Counter("holt_claims_closed", "Claims closed, by final status (complete, terminated).",
                                     ["status"], registry=r)
        self.phase_grants = Counter("holt_phase_grants", "Phases granted (review, parallel, exclusive).", ["phase"],
                                    registry=r)
        self.grants = Counter("holt_grants", "Grants sent to agents, by phase and agent.", ["phase", "agent"],
                              registry=r)
        self.phase_duration = Histogram("holt_phase_duration_seconds",
                                        "Time from a phase's grant to the next phase's grant or the claim's close.",
                                        ["phase"], buckets=_DURATION_BUCKETS, registry=r)
        self.bids = Counter("holt_bids", "Bids received, by agent and bid type.", ["agent", "bid_type"], registry=r)
        self.bid_latency = Histogram("holt_bid_latency_seconds", "Time from a claim's creation to each agent's bid.",
                                     ["agent"], buckets=_DURATION_BUCKETS, registry=r)
        self.bid_timeouts = Counter("holt_bid_timeouts", "Claims whose bidding timed out.", registry=r)
        self.feedback = Counter("holt_feedback_iterations", "Feedback claims created (review rejected the work).",
                                registry=r)
        self.tool_runs = Counter("holt_tool_runs", "Tool runs of an agent, by role and outcome (succeeded, failed).",
                                 ["role", "outcome"], registry=r)
        self.tool_duration = Histogram("holt_tool_duration_seconds", "Duration of tool runs, by role.", ["role"],
                                       buckets=_DURATION_BUCKETS, registry=r)
        self.hitl_requested = Counter("holt_hitl_requests", "Questions and approvals requested, by kind and risk.",
                                      ["kind", "risk"], registry=r)
        self.hitl_decided = Counter("holt_hitl_decisions", "HITL decisions, by kind, risk and outcome.",
                                    ["kind", "risk", "outcome"], registry=r)
        self.hitl_time_to_decision = Histogram(
            "holt_hitl_time_to_decision_seconds", "Time from a request's creation to its decision, by kind and risk.",
            ["kind", "risk"], buckets=_HUMAN_BUCKETS, registry=r)
        self.hitl_escalations = Counter("holt_hitl_escalations", "Escalations of waiting requests, by ladder level.",
                                        ["level"], registry=r)
        self.hitl_expiries = Counter("holt_hitl_expiries", "Requests that expired undecided, by kind.", ["kind"],
                                     registry=r)
        self.hitl_bypasses = Counter("holt_hitl_bypasses", "Approval gates bypassed (break-glass), by risk.", ["risk"],
                                     registry=r)
        self.breakpoint_holds = Counter("holt_breakpoint_holds", "Decisions held by a breakpoint or stepping.",
                                        ["kind"], registry=r)
        self.breakpoint_hold = Histogram("holt_breakpoint_hold_seconds", "How long a held decision was held.",
                                         buckets=_HUMAN_BUCKETS, registry=r)
        self.redis_errors = Counter("holt_redis_errors", "Redis errors seen by this component.", registry=r)
        self.redis_reconnects = Counter("holt_redis_reconnects", "Subscriptions restored after a Redis outage.",
                                        registry=r)
        self.healthy = Gauge("holt_component_healthy", "1 when this component's /healthz says healthy.", registry=r)
        self.ready = Gauge("holt_component_ready", "1 once this component said it is ready.", registry=r)
        self.audit_verify_ok = Gauge("holt_audit_verify_ok",
                                     "1 when the last audit chain verification passed, 0 when it failed.", registry=r)
        self.audit_verify_ok.set(1)
        self.audit_verify_age = Gauge("holt_audit_verify_timestamp_seconds",
                                      "Unix time of the last audit chain verification.", registry=r)
        # Read from Redis at scrape time (orchestrator only).
        self.hitl_pending = Gauge("holt_hitl_pending", "Open HITL requests, by kind and risk.", ["kind", "risk"],
                                  registry=r)
        self.hitl_oldest = Gauge("holt_hitl_oldest_pending_age_seconds", "Age of the oldest open request, by kind.",
                                 ["kind"], registry=r)
        self.hitl_overdue = Gauge("holt_hitl_overdue", "Open requests past their deadline, by kind.", ["kind"],
                                  registry=r)
        self.claims_open = Gauge("holt_claims_open", "Claims not yet complete or terminated.", registry=r)
        self.claim_oldest = Gauge("holt_claim_oldest_open_age_seconds", "Age of the oldest open claim.", registry=r)
        self.grant_queue = Gauge("holt_grant_queue_length", "Claims waiting in an agent's grant queue, by role.",
                                 ["role"], registry=r)
        self._phases = _Pairs()  # claim id -> current phase start
        self._claims = _Pairs()  # claim id -> created
        self._tools = _Pairs()  # claim id -> tool started
        self._holds = _Pairs()  # claim id -> decision held
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._queues_seen: set[str] = set()
        self._pending_seen: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ log events

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached (the lookup costs several times the increment)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, level: int, payload: dict[str, Any], at: float | None = None) -> None:
        """Count one event; ``at`` is when it happened (``time.monotonic()``), if it is counted later."""
        now = time.monotonic() if at is None else at
        kind = str(payload.get("event_type", ""))
        self._child(self.events, kind, _LEVELS.get(level) or logging.getLevelName(level).lower()).inc()
        claim = str(payload.get("claim_id", ""))
        if kind == "claim_created":
            self._child(self.claims_created, str(payload.get("status", ""))).inc()
            self._claims.start(claim, now)
        elif kind.endswith("_phase_granted"):
            phase = kind[: -len("_phase_granted")]
            self._child(self.phase_grants, phase).inc()
            for agent in payload.get("agents") or []:
                self._child(self.grants, phase, str(agent)).inc()
            self._end_phase(claim, now)
            self._phases.start(claim, now, phase)
        elif kind in _CLOSE_EVENTS:
            self._child(self.claims_closed, _CLOSE_EVENTS[kind]).inc()
            self._end_phase(claim, now)
            self._claims.stop(claim, now)
        elif kind == "bid_received":
            agent = str(payload.get("agent_name", ""))
            self._child(self.bids, agent, str(payload.get("bid_type", ""))).inc()
            age = self._claims.peek(claim, now)
            if age is not None:
                self._child(self.bid_latency, agent).observe(age)
        elif kind == "bid_timeout":
            self.bid_timeouts.inc()
        elif kind == "feedback_claim_created":
            self.feedback.inc()
        elif kind == "tool_started":
            self._tools.start(claim, now)
        elif kind in ("tool_succeeded", "tool_failed"):
            role = str(payload.get("agent_name") or self.component)
            self._child(self.tool_runs, role, "succeeded" if kind == "tool_succeeded" else "failed").inc()
            ended = self._tools.stop(claim, now)
            if ended is not None:
                self._child(self.tool_duration, role).observe(ended[0])
        elif kind == "decision_held":
            self._child(self.breakpoint_holds, str(payload.get("kind", ""))).inc()
            self._holds.start(claim, now)
        elif kind == "held_decision_carried_out":
            ended = self._holds.stop(claim, now)
            if ended is not None:
                self.breakpoint_hold.observe(ended[0])
        elif kind == "subscription_restored":
            self.redis_reconnects.inc()
        elif kind in _REDIS_TROUBLE:
            self.redis_errors.inc()

    def _end_phase(self, claim: str, now: float) -> None:
        ended = self._phases.stop(claim, now)
        if ended is not None:
            self._child(self.phase_duration, ended[1]).observe(ended[0])

    # ------------------------------------------------------------------ the audit stream (orchestrator)

    def observe_audit(self, fields: dict[str, Any], request: dict[str, Any] | None) -> None:
        """One audit record (its stream fields) with the request it is about (its JSON record), if any."""
        action = str(fields.get("action", ""))
        details: dict[str, Any] = {}
        try:
            details = json.loads(str(fields.get("details", "{}")))
        except ValueError:
            details = {}
        req = request or {}
        kind = str(details.get("kind") or req.get("kind") or "")
        risk = str(details.get("risk") or req.get("risk") or "")
        if action in ("question_asked", "approval_requested"):
            self.hitl_requested.labels(kind, risk).inc()
        elif action in ("approved", "rejected", "bypassed", "expired", "question_answered", "approval_auto_approved"):
            self.hitl_decided.labels(kind, risk, action).inc()
            created = int(req.get("created_ms") or 0)
            ts = int(str(fields.get("ts_ms", "0")) or 0)
            if created and ts >= created:
                self.hitl_time_to_decision.labels(kind, risk).observe((ts - created) / 1000)
            if action == "bypassed":
                self.hitl_bypasses.labels(risk).inc()
            elif action == "expired":
                self.hitl_expiries.labels(kind).inc()
        elif action == "escalated":
            self.hitl_escalations.labels(str(details.get("level", ""))).inc()

    # ------------------------------------------------------------------ Redis, at scrape time (orchestrator)

    async def refresh_instance(self, redis: Redis) -> None:
        keys = Keys(self.instance)
        now_ms = time.time() * 1000
        ids = [str(i) for i in await redis.zrange(keys.hitl_open, 0, _SCAN_CAP - 1)]
        pending: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        overdue: dict[str, int] = {}
        if ids:
            pipe = redis.pipeline(transaction=False)
            for ident in ids:
                pipe.hget(keys.hitl_request(ident), "record")
            for raw in await pipe.execute():
                try:
                    rec = json.loads(raw) if raw else None
                except ValueError:
                    rec = None
                if not isinstance(rec, dict):
                    continue
                kind, risk = str(rec.get("kind", "")), str(rec.get("risk", ""))
                pending[(kind, risk)] = pending.get((kind, risk), 0) + 1
                age = max(0.0, (now_ms - int(rec.get("created_ms") or now_ms)) / 1000)
                oldest[kind] = max(oldest.get(kind, 0.0), age)
                deadline = int(rec.get("deadline_ms") or 0)
                overdue[kind] = overdue.get(kind, 0) + (1 if deadline and now_ms > deadline else 0)
        for label in self._pending_seen - set(pending):
            self.hitl_pending.labels(*label).set(0)
        for label, count in pending.items():
            self.hitl_pending.labels(*label).set(count)
        self._pending_seen |= set(pending)
        for kind in ("question", "approval", "post_review"):
            self.hitl_oldest.labels(kind).set(oldest.get(kind, 0.0))
            self.hitl_overdue.labels(kind).set(overdue.get(kind, 0))
        open_ids = [str(c) for c in await redis.srandmember(keys.open_claims, _SCAN_CAP) or []]
        self.claims_open.set(await redis.scard(keys.open_claims))
        ages = [0.0]
        if open_ids:
            pipe = redis.pipeline(transaction=False)
            for ident in open_ids:
                pipe.hget(keys.claim(ident), "holt_created_at_ms")
            for raw in await pipe.execute():
                if raw and str(raw).isdigit():
                    ages.append(max(0.0, (now_ms - int(raw)) / 1000))
        self.claim_oldest.set(max(ages))
        queues: dict[str, int] = {}
        prefix = keys.grant_queue("")
        async for raw_key in redis.scan_iter(match=keys.grant_queue_pattern, count=1000):
            key = str(raw_key)
            kind_of = await redis.type(key)
            size = await redis.zcard(key) if kind_of == "zset" else await redis.llen(key) if kind_of == "list" else 0
            queues[key[len(prefix):]] = int(size)
        for role in self._queues_seen - set(queues):
            self.grant_queue.labels(role).set(0)
        for role, size in queues.items():
            self.grant_queue.labels(role).set(size)
        self._queues_seen |= set(queues)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
