"""Spans derived from the events: one workflow is one trace across the orchestrator and the pups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from holt_core import logs
from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.models import StructuralType
from holt_core.tracing import SpanDeriver, claim_span_id, trace_id_of, workflow_span_id
from tests.engine import Engine, make_workspace, poll, python_agents, wait_for_artefact, wait_settled

TWO_STEPS = python_agents("""\
version: "1.0"
agents:
  Writer:
    command: ["python3", "-c", "import json; print(json.dumps({'artefact_type': 'Draft', 'artefact_payload': 'd', \
'summary': 'ok'}))"]
    bidding_strategy: exclusive
  Finisher:
    command: ["python3", "-c", "import json, sys; i = json.load(sys.stdin); t = i['target_artefact']['type']; \
print(json.dumps({'artefact_type': 'Done', 'artefact_payload': 'ok', 'summary': 'ok', \
'structural_type': 'Terminal'} if t == 'Draft' else {'artefact_type': 'Skip', 'artefact_payload': '', \
'summary': 'no'}))"]
    bid_script: ["python3", "-c", "import json, sys; i = json.load(sys.stdin); \
print('exclusive' if i['type'] == 'Draft' else 'ignore')"]
""")


class Process:
    """One process's deriver: it sees only the events of its own component, as in production."""

    def __init__(self, instance: str, component: str, only: str) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.deriver = SpanDeriver(instance, component, provider)
        self.only = only

    def observe(self, level: int, payload: dict[str, Any]) -> None:
        if payload.get("component") == self.only:
            self.deriver.observe(level, payload)


async def test_one_workflow_is_one_trace_across_orchestrator_and_pups(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    ws = make_workspace(tmp_path, files={"holt.yml": TWO_STEPS})
    engine = Engine(redis_url, instance, ws, parse_config(TWO_STEPS))
    orchestrator = Process(instance, "orchestrator", only="orchestrator")
    pups = Process(instance, "Writer", only="pup")
    for proc in (orchestrator, pups):
        logs.add_observer(proc.observe)
    try:
        await engine.start()
        goal = await engine.forage("write")
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb)
    finally:
        for proc in (orchestrator, pups):
            logs.remove_observer(proc.observe)
        await engine.close()

    async def derived() -> bool:
        for proc in (orchestrator, pups):
            await proc.deriver.drain(bb.redis)
        names = [s.name for s in orchestrator.exporter.get_finished_spans()]
        return "workflow" in names and len(pups.exporter.get_finished_spans()) >= 2

    await poll(derived, 20, "the spans")
    spans = [*orchestrator.exporter.get_finished_spans(), *pups.exporter.get_finished_spans()]
    trace = trace_id_of(instance, goal.id)
    assert {s.context.trace_id for s in spans} == {trace}
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    [workflow] = by_name["workflow"]
    assert workflow.context.span_id == workflow_span_id(instance, goal.id) and workflow.parent is None
    claims = by_name["claim complete"]
    assert len(claims) >= 2 and all(c.parent.span_id == workflow.context.span_id for c in claims)
    claim_ids = {c.context.span_id for c in claims}
    assert {claim_span_id(instance, str(c.attributes["holt.claim_id"])) for c in claims} == claim_ids
    tools = [s for s in pups.exporter.get_finished_spans() if s.name.startswith("tool ")]
    assert len(tools) >= 2 and all(t.parent.span_id in claim_ids for t in tools)
    assert all(t.attributes["holt.outcome"] == "succeeded" for t in tools)
    phases = by_name["phase exclusive"]
    assert phases and all(p.parent.span_id in claim_ids for p in phases)
    assert all(s.end_time >= s.start_time for s in spans)
    assert workflow.start_time <= min(c.start_time for c in claims)

