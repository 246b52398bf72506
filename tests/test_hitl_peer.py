"""Peer questions: routed to the producer agent as a direct assignment; escalated to a human when it cannot answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.hitl.models import RequestKind, RequestStatus
from holt_core.models import ClaimStatus, GrantNotification, StructuralType
from tests.clirun import holt as holt_cli
from tests.engine import wait_for_artefact, wait_settled
from tests.hitl_support import agent, config_text, hitl_engine, runs, start_goal, wait_request

PEERS = config_text(agent("Architect", "architect", "GoalDefined=exclusive")
                    + agent("Implementer", "asker", "Design=exclusive", "producer"))


async def test_peer_question_answered_by_the_producer_agent(tmp_path: Path, redis_url: str, instance: str,
                                                           bb: Blackboard) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, PEERS)
    await engine.start()
    grants: list[GrantNotification] = []
    try:
        async with bb.subscribe(*(bb.keys.agent_events(name) for name in engine.config.agents)) as sub:
            await start_goal(engine)
            terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
            await wait_settled(bb)
            while (msg := await sub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
                grants.append(GrantNotification.model_validate_json(str(msg["data"])))
    finally:
        await engine.close()
    assert terminal.payload.endswith("answer was: PostgreSQL 16")
    req = await wait_request(bb, lambda r: r.kind == RequestKind.QUESTION)
    assert req.status == RequestStatus.ANSWERED and req.answer is not None and req.answer.by == "Architect"
    assert [(h.to, h.outcome) for h in req.hops] == [("role:Architect", "answered")]
    # The Architect's tool got the Question itself as its target (a direct assignment).
    lines = runs(engine)
    assert any(line.startswith("Architect Clarification Question") for line in lines)
    assert lines[-1].startswith("Implementer Design Standard") and lines[-1].endswith("Clarification,Answer")
    claims, _ = await bb.list_claims()
    peer = next(c for c in claims if c.artefact_id == req.artefact_id)
    assert peer.granted_exclusive_agent == "Architect" and peer.status == ClaimStatus.COMPLETE
    assert all(c.status != ClaimStatus.TERMINATED for c in claims)
    # Grants from the HITL engine name their targets too (the asker's resumption). The routed question is a
    # pending_assignment claim: as with feedback claims in Holt, its creation on claim_events announces it.
    targets = {c.id: c.artefact_id for c in claims}
    assert all(g.artefact_id == targets[g.claim_id] for g in grants)
    asker = next(c for c in claims if c.granted_exclusive_agent == "Implementer")
    assert [g.claim_id for g in grants].count(asker.id) >= 2 and peer.id not in {g.claim_id for g in grants}


async def test_peer_question_the_producer_cannot_answer_reaches_a_human(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHITECT_KNOWS", "0")
    engine = hitl_engine(tmp_path, redis_url, instance, PEERS)
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.QUESTION and r.assignee == "human")
        assert [(h.to, h.outcome) for h in req.hops] == [("role:Architect", "cannot_answer"), ("human", "")]
        assert req.hops[0].note == "I do not know either"
        code, out, err = await holt_cli(cli_env, "questions", "--name", instance, "--json")
        assert code == 0, err
        assert [q["id"] for q in json.loads(out)] == [req.id]
        code, _, err = await holt_cli(cli_env, "answer", req.id, "MariaDB", "--name", instance, "--as", "alice")
        assert code == 0, err
        terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(bb)
    finally:
        await engine.close()
    assert terminal.payload.endswith("answer was: MariaDB")
    actions = [r.action for r in await bb.audit.records() if r.subject == req.id]
    assert actions == ["question_asked", "question_routed", "question_escalated", "question_answered",
                       "answer_consumed"]
