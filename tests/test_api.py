"""The approvals API over a real socket with a real HTTP client: operators' tokens, the CLI's rules, Slack buttons."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI, Request

from holt_core.api.context import ApiContext
from holt_core.api.server import bind, running, url_of
from holt_core.api.settings import ApiSettings, SlackSettings
from holt_core.api.slack import signature
from holt_core.blackboard import Blackboard
from holt_core.hitl.models import GateSource, HitlRequest, RequestStatus, payload_digest
from holt_core.hitl.notify import message
from holt_core.hitl.policy import HitlPolicy
from holt_core.hitl.requests import Requester, RequestStore
from holt_core.models import Artefact, StructuralType, new_id
from holt_core.operators import add_operator, revoke_operator
from tests.engine import poll

SECRET = "slack-signing-secret-for-tests"
SECRET_ENV = "HOLT_TEST_SLACK_SECRET"


@dataclass
class Api:
    http: httpx.AsyncClient
    bb: Blackboard
    store: RequestStore
    tokens: dict[str, str]  # short name -> token
    names: dict[str, str]  # short name -> operator name (unique per test: the registry is global)
    request: HitlRequest

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def status(self) -> RequestStatus:
        return (await self.store.get(self.request.id)).status


def _policy(names: dict[str, str]) -> HitlPolicy:
    return HitlPolicy.model_validate({
        "operators": {names[n]: {"roles": ["approver"]} for n in ("bob", "carol", "olivia")}
        | {names["dave"]: {"roles": ["viewer"]}},
        "risk_levels": {level: {"approvers": ["approver"]} for level in ("medium", "high", "critical")},
    })


async def _gate(bb: Blackboard, store: RequestStore, started_by: str) -> HitlRequest:
    target = Artefact(id=(i := new_id()), logical_id=i, version=1, structural_type=StructuralType.STANDARD,
                      type="Plan", payload="drop table users", produced_by_role="Coder")
    await bb.create_artefact(target)
    requester = Requester(claim_id=new_id(), role="Coder", target=target, workflow_id=new_id(), started_by=started_by)
    return await store.request_approval(requester, source=GateSource.GRANT, risk="high", artefact=target,
                                        action="grant:Plan", target=target.id, plan={"x": 1},
                                        digest=payload_digest(target.payload), dedupe=f"gate:{target.id}")


@pytest.fixture
async def api(bb: Blackboard, instance: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    names = {n: f"{n}.{instance}" for n in ("bob", "carol", "olivia", "dave", "erin")}
    tokens = {n: (await add_operator(bb.redis, names[n], ["approver"]))[1] for n in names}
    policy = _policy(names)
    store = RequestStore(bb, policy)
    request = await _gate(bb, store, started_by=names["olivia"])
    settings = ApiSettings(slack=SlackSettings(signing_secret_env=SECRET_ENV,
                                               users={"UCAROL1": names["carol"], "UERIN1": names["erin"]}))
    sock = bind("127.0.0.1", 0)
    async with running(ApiContext(bb, settings, policy, redis_url=redis_url), sock):
        async with httpx.AsyncClient(base_url=url_of(sock), timeout=30) as http:
            yield Api(http, bb, store, tokens, names, request)


async def test_openapi_document_is_served(api: Api) -> None:
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/requests", "/requests/{request_id}", "/requests/{request_id}/approve",
                 "/requests/{request_id}/reject", "/questions/{request_id}/answer", "/chat/slack/actions"):
        assert path in paths


async def test_bad_or_missing_token_is_401(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {api.tokens['bob']}"}):
        assert (await api.http.get("/requests", headers=headers)).status_code == 401
        response = await api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=headers)
        assert response.status_code == 401
    await revoke_operator(api.bb.redis, api.names["bob"])  # a revoked token stops working at once
    response = await api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=api.auth("bob"))
    assert response.status_code == 401
    assert await api.status() == RequestStatus.OPEN


async def test_pending_list_and_one_request(api: Api) -> None:
    response = await api.http.get("/requests", params={"state": "pending"}, headers=api.auth("bob"))
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [api.request.id]
    one = await api.http.get(f"/requests/{api.request.id}", headers=api.auth("bob"))
    assert one.status_code == 200 and one.json()["status"] == "open" and one.json()["risk"] == "high"
    assert (await api.http.get(f"/requests/{new_id()}", headers=api.auth("bob"))).status_code == 404


async def test_right_operator_approves_starter_gets_403(api: Api) -> None:
    starter = await api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=api.auth("olivia"))
    assert starter.status_code == 403 and "separation of duties" in starter.json()["detail"]
    wrong_role = await api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=api.auth("dave"))
    assert wrong_role.status_code == 403
    assert await api.status() == RequestStatus.OPEN
    headers = {**api.auth("bob"), "Idempotency-Key": "k-1"}
    approved = await api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and await api.status() == RequestStatus.APPROVED
    again = await api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=headers)  # a retry
    assert again.status_code == 200 and again.json()["status"] == "approved"
    records = await api.bb.audit.records()
    [decision] = [r for r in records if r.action == "approved"]
    assert decision.operator == f"human:{api.names['bob']}" and "impersonated_by" not in decision.details
    assert {r.operator for r in records if r.action == "refused"} == {f"human:{api.names['olivia']}",
                                                                        f"human:{api.names['dave']}"}


async def test_two_concurrent_approvals_one_wins_the_other_409(api: Api) -> None:
    bob, carol = await asyncio.gather(
        api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=api.auth("bob")),
        api.http.post(f"/requests/{api.request.id}/approve", json={}, headers=api.auth("carol")))
    assert sorted([bob.status_code, carol.status_code]) == [200, 409], (bob.text, carol.text)
    loser = bob if bob.status_code == 409 else carol
    assert "already approved" in loser.json()["detail"]


async def test_reject_needs_a_reason_and_digest_binds(api: Api) -> None:
    bad = await api.http.post(f"/requests/{api.request.id}/reject", json={}, headers=api.auth("bob"))
    assert bad.status_code == 422
    stale = await api.http.post(f"/requests/{api.request.id}/approve", json={"digest": "0" * 64},
                                headers=api.auth("bob"))
    assert stale.status_code == 409 and await api.status() == RequestStatus.OPEN
    rejected = await api.http.post(f"/requests/{api.request.id}/reject", json={"reason": "too risky"},
                                   headers=api.auth("carol"))
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"


# ---------------------------------------------------------------------- Slack


@pytest.fixture
async def capture() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local stand-in for Slack's response_url."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        received.append(json.loads(await request.body()))
        return {"ok": "true"}

    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await poll(lambda: server.started, what="capture server")
    try:
        yield f"{url_of(sock)}/hook", received
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


def _press(user: str, action: str, request_id: str, response_url: str) -> bytes:
    payload = {"type": "block_actions", "user": {"id": user, "username": user.lower()},
               "actions": [{"action_id": action, "value": request_id}], "response_url": response_url,
               "container": {"message_ts": "1700000000.000100"}}
    return urlencode({"payload": json.dumps(payload)}).encode()


def _signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    ts = str(int(at if at is not None else time.time()))
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(secret, ts, body),
            "Content-Type": "application/x-www-form-urlencoded"}


async def test_slack_button_with_a_valid_signature_approves(api: Api, capture: tuple[str, list[Any]]) -> None:
    url, received = capture
    body = _press("UCAROL1", "holt_approve", api.request.id, url)
    response = await api.http.post("/chat/slack/actions", content=body, headers=_signed(body))
    assert response.status_code == 200
    assert await api.status() == RequestStatus.APPROVED
    records = await api.bb.audit.records()
    [approved] = [r for r in records if r.action == "approved"]
    assert approved.operator == f"human:{api.names['carol']}"
    assert approved.details["impersonated_by"] == "system:chat:slack:UCAROL1"  # who vouched for carol
    await poll(lambda: received, what="the reply in the thread")
    assert "approve recorded" in received[0]["text"] and received[0]["thread_ts"] == "1700000000.000100"


async def test_slack_forged_or_stale_signature_is_refused(api: Api, capture: tuple[str, list[Any]]) -> None:
    url, received = capture
    body = _press("UCAROL1", "holt_approve", api.request.id, url)
    forged = await api.http.post("/chat/slack/actions", content=body, headers=_signed(body, secret="guess"))
    stale = await api.http.post("/chat/slack/actions", content=body, headers=_signed(body, at=time.time() - 600))
    tampered_body = _press("UCAROL1", "holt_reject", api.request.id, url)
    swapped = await api.http.post("/chat/slack/actions", content=tampered_body, headers=_signed(body))
    unsigned = await api.http.post("/chat/slack/actions", content=body)
    assert [r.status_code for r in (forged, stale, swapped, unsigned)] == [401, 401, 401, 401]
    assert await api.status() == RequestStatus.OPEN
    assert [r.action for r in await api.bb.audit.records()] == ["approval_requested"]
    assert received == []


async def test_slack_unmapped_or_unregistered_user_is_refused_and_audited(
        api: Api, capture: tuple[str, list[Any]]) -> None:
    url, received = capture
    body = _press("UNOBODY9", "holt_approve", api.request.id, url)
    response = await api.http.post("/chat/slack/actions", content=body, headers=_signed(body))
    assert response.status_code == 200
    assert await api.status() == RequestStatus.OPEN
    refused = [r for r in await api.bb.audit.records() if r.action == "chat_refused"]
    assert len(refused) == 1 and refused[0].details["slack_user"] == "UNOBODY9"
    await poll(lambda: received, what="the refusal in the thread")
    assert received[0]["text"].startswith("Refused")


def test_slack_notification_carries_buttons_and_teams_a_card() -> None:
    fields = {"event": "request", "request_id": "r1", "kind": "approval", "risk": "high", "text": "Deploy <!here>"}
    slack = message(fields, "inst", "slack")
    actions = next(b for b in slack["blocks"] if b["type"] == "actions")["elements"]
    assert [(a["action_id"], a["value"]) for a in actions] == [("holt_approve", "r1"), ("holt_reject", "r1")]
    assert "<!here>" not in json.dumps(slack["blocks"])  # agent text cannot ping a channel
    decided = message({**fields, "event": "decision"}, "inst", "slack")
    assert not [b for b in decided["blocks"] if b["type"] == "actions"]
    teams = message(fields, "inst", "teams")
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert "text" in message(fields, "inst")  # generic stays as it was
