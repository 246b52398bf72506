"""Deadlines: escalation then expiry with the configured outcome; webhooks with retries; SIGKILL of the
orchestrator with questions and approvals pending, then restart: nothing lost, deadlines still fire."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.hitl.deadlines import DeadlineSweeper
from holt_core.hitl.models import RequestKind, RequestStatus
from holt_core.hitl.policy import HitlPolicy
from holt_core.hitl.requests import RequestStore
from holt_core.logs import EventLogger
from holt_core.models import ClaimStatus, StructuralType
from tests.clirun import holt as holt_cli
from tests.engine import wait_for_artefact, wait_settled
from tests.hitl_support import agent, config_text, hitl_engine, start_goal, wait_request
from tests.test_orchestrator_crash import start_orchestrator_process


class FlakyWebhook:
    """A local HTTP endpoint that answers 500 to the first two POSTs, then 200; records every body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        self.statuses: list[int] = []
        self.received = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.received:
                    status = 500 if len(outer.statuses) < 2 else 200
                    outer.statuses.append(status)
                    if status == 200:
                        outer.bodies.append(body)
                    outer.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def delivered_events(self) -> list[str]:
        with self.received:
            return sorted(str(b["holt"]["event"]) for b in self.bodies)  # type: ignore[index]


@pytest.fixture
def webhook() -> Iterator[FlakyWebhook]:
    hook = FlakyWebhook()
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


async def test_question_escalates_then_expires_with_default_and_webhooks_retry(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, webhook: FlakyWebhook) -> None:
    policy = f"""\
  questions:
    escalate_after: [1s]
    expire_after: 2s
    on_expire: {{default: "use SQLite"}}
  notify:
    webhooks:
      - url: {webhook.url}
        events: [request, escalation, expiry]
"""
    engine = hitl_engine(tmp_path, redis_url, instance,
                         config_text(agent("Asker", "asker", "GoalDefined=exclusive", "human"), policy))
    await engine.start()
    try:
        await start_goal(engine)
        terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(bb)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.QUESTION)
        async with asyncio.timeout(20):
            while webhook.delivered_events() != ["escalation", "expiry", "request"]:
                await asyncio.to_thread(_wait_post, webhook)
    finally:
        await engine.close()
    assert terminal.payload.endswith("answer was: use SQLite")
    assert req.status == RequestStatus.EXPIRED and req.escalation_level == 1
    assert req.answer is not None and req.answer.by == "system:timeout" and req.answer.flagged
    records = [r for r in await bb.audit.records() if r.subject == req.id]
    assert [r.action for r in records][:3] == ["question_asked", "escalated", "expired"]
    assert records[1].operator == records[2].operator == "system:timeout"
    # Two failures, then every notification got through, each exactly once; Slack/Teams read "text".
    assert webhook.statuses[:2] == [500, 500] and webhook.statuses.count(200) == 3
    assert all("text" in b and req.id in str(b["text"]) for b in webhook.bodies)


def _wait_post(hook: FlakyWebhook) -> None:
    with hook.received:
        hook.received.wait(1.0)


async def test_question_expiry_fail_terminates_the_claim(tmp_path: Path, redis_url: str, instance: str,
                                                        bb: Blackboard) -> None:
    policy = "  questions:\n    expire_after: 1s\n    on_expire: fail\n"
    engine = hitl_engine(tmp_path, redis_url, instance,
                         config_text(agent("Asker", "asker", "GoalDefined=exclusive", "human"), policy))
    await engine.start()
    try:
        await start_goal(engine)
        failure = await wait_for_artefact(bb, lambda a: a.type == "QuestionExpired")
        await wait_settled(bb)
    finally:
        await engine.close()
    assert failure.structural_type == StructuralType.FAILURE and failure.produced_by_role == "system:timeout"
    [claim] = (await bb.list_claims())[0]
    assert claim.status == ClaimStatus.TERMINATED and "expired unanswered" in claim.termination_reason


async def test_sigkill_with_question_and_approval_pending_then_restart(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    policy = """\
  operators: {alice: [approver]}
  risk_levels:
    medium: {approvers: [approver]}
    high: {approvers: [approver], expire_after: 3s}
    critical: {approvers: [approver]}
  rules:
    - match: {artefact_type: Design}
      risk: high
"""
    agents = (agent("Architect", "architect", "GoalDefined=claim")
              + agent("Asker", "asker", "GoalDefined=exclusive", "human")
              + agent("Implementer", "implementer", "Design=exclusive"))
    engine = hitl_engine(tmp_path, redis_url, instance, config_text(agents, policy))
    orch = await start_orchestrator_process(redis_url, instance, engine.workspace)
    try:
        await engine.start_pups()
        await start_goal(engine)
        question = await wait_request(bb, lambda r: r.kind == RequestKind.QUESTION)
        approval = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        assert question.is_open and approval.is_open
        orch.send_signal(signal.SIGKILL)
        await orch.wait()
        # While no orchestrator runs: a person answers; the approval's deadline keeps running.
        code, _, err = await holt_cli(cli_env, "answer", question.id, "PostgreSQL", "--name", instance,
                                      "--as", "alice")
        assert code == 0, err
        orch = await start_orchestrator_process(redis_url, instance, engine.workspace)
        terminal = await wait_for_artefact(bb, lambda a: a.type == "Result")
        expired = await wait_request(bb, lambda r: r.id == approval.id and r.status == RequestStatus.EXPIRED)
        await wait_settled(bb)
    finally:
        if orch.returncode is None:
            orch.send_signal(signal.SIGTERM)
            await orch.wait()
        await engine.close()
    assert terminal.payload.endswith("answer was: PostgreSQL")
    assert expired.decided_by == "system:timeout"
    claims, _ = await bb.list_claims()
    design_claim = next(c for c in claims if c.artefact_id == approval.artefact_id)
    assert design_claim.status == ClaimStatus.TERMINATED  # failed closed, never granted
    assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "Code"]
    records = await bb.audit.records()
    assert [r.action for r in records if r.subject == approval.id].count("expired") == 1
    assert [r.action for r in records if r.subject == question.id].count("question_answered") == 1
    assert (await bb.audit.verify()).ok



async def test_a_halted_sweeper_ends_on_its_own(bb: Blackboard) -> None:
    # Shutdown must not depend on the cancellation reaching the sweeper's loop: halt() alone ends it, here
    # halted once its first cycle has run (otherwise it loops for ever, looking again every second).
    cycled = asyncio.Event()

    async def on_cycle() -> None:
        cycled.set()

    sweeper = DeadlineSweeper(RequestStore(bb, HitlPolicy()), log=EventLogger("test", bb.instance),
                              on_cycle=on_cycle)
    running = asyncio.create_task(sweeper.run())
    await asyncio.wait_for(cycled.wait(), 5)
    sweeper.halt()
    await asyncio.wait_for(running, 5)
    assert not running.cancelled() and running.exception() is None
