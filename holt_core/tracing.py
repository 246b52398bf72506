"""OpenTelemetry traces derived from the structured events, off the engine's path (optional extra ``[otel]``).

Like the metrics, nothing in the engine is instrumented: ``SpanDeriver.observe`` queues the events a process logs
and a task on the health thread turns pairs of them into spans after the fact (with their real start and end
times): a claim (``claim_created`` to its close), each phase (grant to the next grant or the close), each tool run
(``tool_started`` to its outcome, in the pup), each human wait (``approval_requested`` / ``question_routed`` to
``claim_resumed``), each held decision, and the workflow (its goal to its Terminal artefact).

One workflow is one trace across processes without passing a context around: the blackboard already links every
claim to its workflow (the claim's target artefact, then each artefact's first source, up to the goal), so every
process derives the same ids from it: trace id = hash(instance, goal id), the workflow span's id = hash(goal id),
a claim span's id = hash(claim id). A pup's tool span therefore lands under the orchestrator's claim span.

Exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the usual OTEL_* variables apply); off
otherwise, and off when the ``[otel]`` extra is not installed.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import importlib.util
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from holt_core.keys import Keys

ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
_LINEAGE_LEVELS = 64
_CACHE = 20_000
_PENDING = 10_000
_CLOSE = {"claim_complete": "complete", "claim_terminated": "terminated",
          "claim_terminated_review_feedback": "terminated"}


def available() -> bool:
    return importlib.util.find_spec("opentelemetry.sdk") is not None


def _id(bits: int, *parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    value = int.from_bytes(digest[: bits // 8], "big")
    return value or 1  # 0 is the invalid id


def trace_id_of(instance: str, workflow_id: str) -> int:
    return _id(128, "holt-trace", instance, workflow_id)


def workflow_span_id(instance: str, workflow_id: str) -> int:
    return _id(64, "holt-workflow", instance, workflow_id)


def claim_span_id(instance: str, claim_id: str) -> int:
    return _id(64, "holt-claim", instance, claim_id)


class _Bounded(OrderedDict[str, Any]):
    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _CACHE:
            self.popitem(last=False)


class SpanDeriver:
    """Queue events (any thread), then ``await run(redis)`` on a loop of its own to emit the spans."""

    def __init__(self, instance: str, component: str, provider: Any) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        assert isinstance(provider, TracerProvider)
        self.instance = instance
        self.component = component
        self.keys = Keys(instance)
        self.provider = provider
        self._ids = _FixedIds()
        provider.id_generator = cast(Any, self._ids)  # duck-typed: the SDK only calls its two methods
        self.tracer = provider.get_tracer("holt")
        self._queue: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=_PENDING)
        self._wake = threading.Event()
        self._roots = _Bounded()  # artefact id -> goal (workflow) id
        self._claim_roots = _Bounded()  # claim id -> goal id
        self._open: dict[str, _Bounded] = {k: _Bounded() for k in ("claim", "phase", "tool", "wait", "hold")}

    # ------------------------------------------------------------------ any thread

    def observe(self, level: int, payload: dict[str, Any]) -> None:
        self._queue.append((time.time_ns(), payload))

    # ------------------------------------------------------------------ the deriver's loop

    async def run(self, redis: Redis) -> None:
        while True:
            await self.drain(redis)
            await asyncio.sleep(0.2)

    async def drain(self, redis: Redis) -> None:
        while self._queue:
            at, payload = self._queue.popleft()
            try:
                await self._handle(redis, at, payload)
            except (RedisError, OSError, TimeoutError, ValueError):
                continue  # a span lost, never the component

    async def _handle(self, redis: Redis, at: int, p: dict[str, Any]) -> None:
        kind = str(p.get("event_type", ""))
        claim = str(p.get("claim_id", ""))
        if kind == "claim_created":
            root = await self._root_of_artefact(redis, str(p.get("artefact_id", "")))
            if root:
                self._claim_roots.put(claim, root)
            self._open["claim"].put(claim, (at, {"holt.artefact_id": str(p.get("artefact_id", ""))}))
        elif kind.endswith("_phase_granted"):
            await self._end_phase(redis, claim, at)
            phase = kind[: -len("_phase_granted")]
            self._open["phase"].put(claim, (at, {"holt.phase": phase,
                                                  "holt.agents": ",".join(map(str, p.get("agents") or []))}))
        elif kind in _CLOSE:
            await self._end_phase(redis, claim, at)
            started = self._open["claim"].pop(claim, None)
            if started is not None:
                await self._emit(redis, claim, f"claim {_CLOSE[kind]}", started[0], at,
                                 {**started[1], "holt.status": _CLOSE[kind]}, claim_span=True)
        elif kind == "tool_started":
            self._open["tool"].put(claim, (at, {}))
        elif kind in ("tool_succeeded", "tool_failed"):
            started = self._open["tool"].pop(claim, None)
            if started is not None:
                outcome = "succeeded" if kind == "tool_succeeded" else "failed"
                await self._emit(redis, claim, f"tool {self.component}", started[0], at,
                                 {"holt.role": self.component, "holt.outcome": outcome}, error=outcome == "failed")
        elif kind in ("approval_requested", "question_routed"):
            self._open["wait"].put(str(p.get("request_id", "")), (at, {
                "holt.claim_id": claim, "holt.request_id": str(p.get("request_id", "")),
                "holt.kind": "approval" if kind == "approval_requested" else "question",
                "holt.risk": str(p.get("risk", ""))}))
        elif kind == "claim_resumed":
            started = self._open["wait"].pop(str(p.get("request_id", "")), None)
            if started is not None:
                await self._emit(redis, claim, f"human wait {started[1]['holt.kind']}", started[0], at,
                                 started[1])
        elif kind == "decision_held":
            self._open["hold"].put(claim, (at, {"holt.kind": str(p.get("kind", ""))}))
        elif kind == "held_decision_carried_out":
            started = self._open["hold"].pop(claim, None)
            if started is not None:
                await self._emit(redis, claim, "held decision", started[0], at, started[1])
        elif kind == "artefact_received":
            await self._maybe_terminal(redis, str(p.get("artefact_id", "")), at)

    async def _end_phase(self, redis: Redis, claim: str, at: int) -> None:
        started = self._open["phase"].pop(claim, None)
        if started is not None:
            await self._emit(redis, claim, f"phase {started[1]['holt.phase']}", started[0], at, started[1])

    # ------------------------------------------------------------------ spans

    async def _emit(self, redis: Redis, claim: str, name: str, start: int, end: int, attributes: dict[str, Any],
                    *, claim_span: bool = False, error: bool = False) -> None:
        root = await self._root_of_claim(redis, claim)
        if not root:
            return
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

        trace_id = trace_id_of(self.instance, root)
        parent_id = workflow_span_id(self.instance, root) if claim_span else claim_span_id(self.instance, claim)
        parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
            trace_id, parent_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
        own_id = claim_span_id(self.instance, claim) if claim_span else None
        with self._ids.fixed(span_id=own_id):
            span = self.tracer.start_span(name, context=parent, start_time=start, attributes={
                **attributes, "holt.instance": self.instance, "holt.component": self.component,
                "holt.claim_id": claim, "holt.workflow_id": root})
        if error:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=max(end, start))

    async def _maybe_terminal(self, redis: Redis, artefact_id: str, at: int) -> None:
        if not artefact_id:
            return
        fields = await redis.hmget(self.keys.artefact(artefact_id), ["structural_type", "type"])
        if fields[0] != "Terminal":
            return
        root = await self._root_of_artefact(redis, artefact_id)
        if not root:
            return
        created = await redis.hget(self.keys.artefact(root), "created_at_ms")
        start = int(created) * 1_000_000 if created and str(created).isdigit() else at
        from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, set_span_in_context

        with self._ids.fixed(trace_id=trace_id_of(self.instance, root),
                             span_id=workflow_span_id(self.instance, root)):
            span = self.tracer.start_span(
                "workflow", context=set_span_in_context(NonRecordingSpan(INVALID_SPAN_CONTEXT)), start_time=start,
                attributes={"holt.instance": self.instance, "holt.workflow_id": root,
                            "holt.terminal_artefact_id": artefact_id, "holt.terminal_type": str(fields[1] or "")})
        span.end(end_time=max(at, start))

    # ------------------------------------------------------------------ the blackboard's lineage

    async def _root_of_claim(self, redis: Redis, claim: str) -> str:
        if claim in self._claim_roots:
            return str(self._claim_roots[claim])
        artefact = await redis.hget(self.keys.claim(claim), "artefact_id")
        root = await self._root_of_artefact(redis, str(artefact or ""))
        if root:
            self._claim_roots.put(claim, root)
        return root

    async def _root_of_artefact(self, redis: Redis, artefact_id: str) -> str:
        path: list[str] = []
        current = artefact_id
        for _ in range(_LINEAGE_LEVELS):
            if not current:
                return ""
            if current in self._roots:
                current = str(self._roots[current])
                break
            path.append(current)
            raw = await redis.hget(self.keys.artefact(current), "source_artefacts")
            if raw is None:
                return ""
            sources = json.loads(raw) if raw else []
            if not sources:
                break
            current = str(sources[0])
        for seen in path:
            self._roots.put(seen, current)
        return current


class _FixedIds:
    """The SDK's id generator, except for the ids a span must have (derived from the blackboard)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self._random = RandomIdGenerator()
        self._local = threading.local()

    def fixed(self, *, trace_id: int | None = None, span_id: int | None = None) -> _Fixing:
        return _Fixing(self._local, trace_id, span_id)

    def generate_span_id(self) -> int:
        value = getattr(self._local, "span_id", None)
        return int(value) if value else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        value = getattr(self._local, "trace_id", None)
        return int(value) if value else self._random.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False  # derived from the workflow id, not W3C-random


class _Fixing:
    def __init__(self, local: threading.local, trace_id: int | None, span_id: int | None) -> None:
        self._local, self._trace_id, self._span_id = local, trace_id, span_id

    def __enter__(self) -> None:
        self._local.trace_id, self._local.span_id = self._trace_id, self._span_id

    def __exit__(self, *_: object) -> None:
        self._local.trace_id = self._local.span_id = None


def from_env(instance: str, component: str) -> SpanDeriver | None:
    """A deriver exporting over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the extra is installed."""
    if not os.environ.get(ENV_ENDPOINT) or not available():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": f"holt-{component}", "service.namespace": "holt",
                                "holt.instance": instance})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return SpanDeriver(instance, component, provider)
