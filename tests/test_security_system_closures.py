"""A system closure (expired, cancelled, superseded, approved by policy) counts only with the system's proof, which an
agent's Redis user cannot write: an agent marking an open question or approval closed does not end a person's chance
to decide it (docs/security.md). Pure rule tests, then the attacks with the agent's credentials against a running
orchestrator and pups on their own Redis users; real Redis, real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from holt_core.acl import role_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.hitl.client import HitlClient
from holt_core.hitl.models import Answer, Approval, Effect, HitlRequest, RequestChange, RequestKind, RequestStatus
from holt_core.hitl.policy import HitlPolicy
from holt_core.hitl.proofs import Proof, SystemProof, honour, needs_system_proof
from holt_core.hitl.requests import RequestStore
from holt_core.keys import Keys
from holt_core.models import ClaimStatus, StructuralType, new_id, now_ms
from tests.clirun import holt as holt_cli
from tests.engine import poll, wait_for_artefact, wait_settled
from tests.hitl_support import agent, config_text, hitl_engine, runs, start_goal, wait_request
from tests.test_hitl_approvals import gated

KEYS = Keys("t-sys")
ASKER = config_text(agent("Asker", "asker", "GoalDefined=exclusive", "human"))
SINCE = {KEYS.hitl_system_proofs_from: "1"}


def _q(**update: object) -> HitlRequest:
    return HitlRequest(id="q1", kind=RequestKind.QUESTION, created_ms=1, text="which?").model_copy(update=update)


def _a(**update: object) -> HitlRequest:
    return HitlRequest(id="a1", kind=RequestKind.APPROVAL, created_ms=1, risk="low", digest="d",
                       on_expire="reject").model_copy(update=update)


def _proven(req: HitlRequest, **update: object) -> dict[str, str | None]:
    return {**SINCE, KEYS.hitl_system_proof(req.id): SystemProof.of(req).model_copy(update=update).to_json()}


EXPIRED = _q(status=RequestStatus.EXPIRED, decided_by="system:timeout", decided_ms=5, effect=Effect.PENDING,
             reason="expired: nobody answered in time")
DEFAULTED = EXPIRED.model_copy(update={"answer": Answer(text="SQLite", by="system:timeout", at_ms=5,
                                                        artefact_id="ans", flagged=True)})
CANCELLED = _q(status=RequestStatus.CANCELLED, decided_by="system:orchestrator", decided_ms=5)
SUPERSEDED = _a(status=RequestStatus.SUPERSEDED, decided_by="system:orchestrator", decided_ms=5)
AUTO = _a(status=RequestStatus.APPROVED, decided_by="system:policy", decided_ms=5, decision_artefact_id="dec")


@pytest.mark.parametrize(("req", "values", "counts_as"), [
    # Proven by the system: as stored.
    (EXPIRED, _proven(EXPIRED), RequestStatus.EXPIRED),
    (DEFAULTED, _proven(DEFAULTED), RequestStatus.EXPIRED),
    (CANCELLED, _proven(CANCELLED), RequestStatus.CANCELLED),
    (SUPERSEDED, _proven(SUPERSEDED), RequestStatus.SUPERSEDED),
    (AUTO, _proven(AUTO), RequestStatus.APPROVED),
    # No proof, or a proof of another outcome, time, request or default answer: open again.
    (EXPIRED, SINCE, RequestStatus.OPEN),
    (CANCELLED, _proven(CANCELLED, status="expired"), RequestStatus.OPEN),
    (EXPIRED, _proven(EXPIRED, decided_ms=4), RequestStatus.OPEN),
    (EXPIRED, _proven(EXPIRED, subject="q2"), RequestStatus.OPEN),
    (EXPIRED, _proven(EXPIRED, decided_by="system:orchestrator"), RequestStatus.OPEN),
    (DEFAULTED, _proven(DEFAULTED, answer_artefact_id="other"), RequestStatus.OPEN),
    (AUTO, _proven(AUTO, decision_artefact_id="other"), RequestStatus.OPEN),
    (AUTO, {**SINCE, KEYS.hitl_system_proof("a1"): "not json"}, RequestStatus.OPEN),
    (SUPERSEDED, SINCE, RequestStatus.OPEN),
    (AUTO, SINCE, RequestStatus.OPEN),
    # Outcomes nobody but a person can make, decided by the system or an agent: need the system's proof too.
    (_a(status=RequestStatus.REJECTED, decided_by="system:policy", decided_ms=5), SINCE, RequestStatus.OPEN),
    (_a(status=RequestStatus.REJECTED, decided_by="Deployer", decided_ms=5), SINCE, RequestStatus.OPEN),
    (_q(status=RequestStatus.ANSWERED, decided_by="system:timeout", decided_ms=5,
        answer=Answer(text="x", by="system:timeout", at_ms=5)), SINCE, RequestStatus.OPEN),
    # A peer agent's answer is an agent act (not protected), a proven person's act needs no system proof.
    (_q(status=RequestStatus.ANSWERED, decided_by="Architect", decided_ms=5,
        answer=Answer(text="x", by="Architect", at_ms=5)), SINCE, RequestStatus.ANSWERED),
    (_a(status=RequestStatus.APPROVED, decided_by="human:bob", decided_ms=5,
        approvals=[Approval(operator="bob", at_ms=5, digest="d", proof="n1")]),
     {**SINCE, KEYS.proof("bob", "a1", "n1"): Proof(act="approve", subject="a1", operator="bob", at_ms=5,
                                                    digest="d").to_json()}, RequestStatus.APPROVED),
    # Before the orchestrator proved the closures made before the upgrade (no hitl:sysproofs_from): as stored.
    (EXPIRED, {}, RequestStatus.EXPIRED),
    (CANCELLED, {}, RequestStatus.CANCELLED),
])
def test_honour_counts_a_system_closure_only_with_its_proof(req: HitlRequest, values: dict[str, str | None],
                                                             counts_as: RequestStatus) -> None:
    honoured = honour(KEYS, req, values, HitlPolicy())
    assert honoured.request.status == counts_as
    assert honoured.forged == (counts_as == RequestStatus.OPEN)
    if honoured.forged:
        reopened = honoured.request
        assert reopened.decided_by == "" and reopened.effect == Effect.NONE and reopened.decision_artefact_id == ""
        assert reopened.answer is None or req.kind != RequestKind.QUESTION


def test_which_closures_are_the_systems() -> None:
    assert [needs_system_proof(r) for r in (EXPIRED, CANCELLED, SUPERSEDED, AUTO, _q(), _a())] == \
        [True, True, True, True, False, False]


async def test_closures_made_before_the_upgrade_are_proven_once(bb: Blackboard) -> None:
    store = RequestStore(bb, HitlPolicy())
    for req in (EXPIRED, _a(id="a2")):
        await bb.redis.hset(bb.keys.hitl_request(req.id), mapping=req.to_hash())
    assert (await store.get("q1")).status == RequestStatus.EXPIRED  # no marker yet: as stored
    assert await store.start_system_proofs() == 1
    assert await store.start_system_proofs() == 0  # once per instance
    assert (await store.get("q1")).status == RequestStatus.EXPIRED
    assert (await store.get("a2")).status == RequestStatus.OPEN
    # A closure written after that without the system's proof counts as open.
    await bb.redis.hset(bb.keys.hitl_request("a3"), mapping=CANCELLED.model_copy(update={"id": "a3"}).to_hash())
    assert (await store.get("a3")).status == RequestStatus.OPEN
    assert [r.action for r in await bb.audit.records()] == ["system_proofs_started"]


async def _reported(bb: Blackboard, request_id: str) -> int:
    return len([r for r in await bb.audit.records() if r.action == "forged_decision_ignored"
                and r.subject == request_id])


async def _forge(agent_user: Redis, bb: Blackboard, req: HitlRequest, *, announce: bool, **update: object) -> None:
    """What a prompt-injected tool with the agent's Redis credentials can do: rewrite the request hash as closed by
    the system and take it out of the open list (announcing it on hitl:events, or quietly)."""
    forged = req.model_copy(update={"rev": req.rev + 1, "decided_ms": now_ms(), **update})
    await agent_user.hset(bb.keys.hitl_request(req.id), mapping=forged.to_hash())
    await agent_user.zrem(bb.keys.hitl_open, req.id)
    await agent_user.zrem(bb.keys.hitl_active, req.id)
    if announce:
        await agent_user.publish(bb.keys.hitl_events, RequestChange(
            request_id=req.id, kind=req.kind, status=forged.status, change=forged.status.value,
            claim_id=req.claim_id, rev=forged.rev).to_json())


async def _listed(cli_env: dict[str, str], instance: str, command: str) -> list[str]:
    code, out, err = await holt_cli(cli_env, command, "--name", instance, "--json")
    assert code == 0, err
    return [item["id"] for item in json.loads(out)]


async def test_agent_cannot_close_an_open_question_for_the_system(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, ASKER)
    engine.role_users = True  # the orchestrator as holt-orchestrator, the pups as holt-agent
    await engine.start()
    agent_user: Redis = connect_redis(role_url(redis_url, "agent"))
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.QUESTION)
        with pytest.raises(NoPermissionError):
            await agent_user.set(bb.keys.hitl_system_proof(req.id), SystemProof.of(req).to_json())
        with pytest.raises(NoPermissionError):
            await agent_user.delete(bb.keys.hitl_system_proofs_from)

        # Expired, as the deadline sweeper would write it, announced: the orchestrator does not terminate the asker.
        await _forge(agent_user, bb, req, announce=True, status=RequestStatus.EXPIRED, decided_by="system:timeout",
                     effect=Effect.PENDING, reason="expired: nobody answered in time")
        await poll(lambda: _reported(bb, req.id), what="the forged expiry reported")
        await _listed_again(bb, cli_env, instance, "questions", req.id)
        # Superseded, quietly: the orchestrator's housekeeping notices it.
        now = await bb.redis.hgetall(bb.keys.hitl_request(req.id))
        await _forge(agent_user, bb, HitlRequest.from_hash(now), announce=False, status=RequestStatus.SUPERSEDED,
                     decided_by="system:orchestrator", reason="a newer version")

        async def twice() -> bool:
            return await _reported(bb, req.id) == 2

        await poll(twice, within=30, what="the quiet forgery reported")
        await _listed_again(bb, cli_env, instance, "questions", req.id)
        assert (await HitlClient(bb, HitlPolicy()).status(req.id)).status == RequestStatus.OPEN
        claims, _ = await bb.list_claims()
        assert [c.status for c in claims] == [ClaimStatus.PENDING_EXCLUSIVE]  # still held for the person

        code, _, err = await holt_cli(cli_env, "answer", req.id, "PostgreSQL", "--name", instance, "--as", "alice")
        assert code == 0, err
        terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(bb)
    finally:
        await agent_user.aclose()
        await engine.close()
    assert terminal.payload.endswith("answer was: PostgreSQL")
    assert await _reported(bb, req.id) == 2  # once per forged version
    assert await _listed(cli_env, instance, "questions") == []
    claims, _ = await bb.list_claims()
    assert [c.status for c in claims] == [ClaimStatus.COMPLETE]


async def _listed_again(bb: Blackboard, cli_env: dict[str, str], instance: str, command: str, request_id: str) -> None:
    """The orchestrator put the request back in the open list, and the CLI lists it."""

    async def back() -> bool:
        return await bb.redis.zscore(bb.keys.hitl_open, request_id) is not None

    await poll(back, within=30, what=f"{request_id} in the open list again")
    assert request_id in await _listed(cli_env, instance, command)


async def test_agent_cannot_approve_by_policy_or_cancel_an_open_approval(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, gated("high"))
    engine.role_users = True
    await engine.start()
    agent_user: Redis = connect_redis(role_url(redis_url, "agent"))
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        # Approved by system:policy, the risk rewritten to one that approves automatically, announced.
        await _forge(agent_user, bb, req, announce=True, status=RequestStatus.APPROVED, decided_by="system:policy",
                     risk="low", reason="risk level low approves automatically")
        await poll(lambda: _reported(bb, req.id), what="the forged automatic approval reported")
        await _listed_again(bb, cli_env, instance, "pending", req.id)
        # Cancelled, quietly.
        now = await bb.redis.hgetall(bb.keys.hitl_request(req.id))
        await _forge(agent_user, bb, HitlRequest.from_hash(now), announce=False, status=RequestStatus.CANCELLED,
                     decided_by="system:orchestrator", risk="high", reason="claim gone")

        async def twice() -> bool:
            return await _reported(bb, req.id) == 2

        await poll(twice, within=30, what="the quiet forgery reported")
        await _listed_again(bb, cli_env, instance, "pending", req.id)
        claim = next(c for c in (await bb.list_claims())[0] if c.artefact_id == req.artefact_id)
        assert claim.status == ClaimStatus.PENDING_REVIEW  # still gated
        assert [line.split()[0] for line in runs(engine)] == ["Architect"]

        code, _, err = await holt_cli(cli_env, "approve", req.id, "--name", instance, "--as", "alice")
        assert code == 0, err
        await wait_for_artefact(bb, lambda a: a.type == "Code")
        await wait_settled(bb)
    finally:
        await agent_user.aclose()
        await engine.close()
    approved = await wait_request(bb, lambda r: r.id == req.id)
    assert approved.status == RequestStatus.APPROVED and approved.decided_by == "human:alice"
    assert [line.split()[0] for line in runs(engine)] == ["Architect", "Implementer"]
    assert await _reported(bb, req.id) == 2


async def test_a_tool_action_at_an_auto_approving_level_is_approved_by_the_orchestrator(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    text = config_text(agent("Deployer", "deployer", "GoalDefined=exclusive", "low"))
    engine = hitl_engine(tmp_path, redis_url, instance, text)
    engine.role_users = True  # the pup cannot write the system's proof: the orchestrator decides
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL and r.status == RequestStatus.APPROVED)
        plan = await wait_for_artefact(bb, lambda a: a.type == "DeployPlan")
        await wait_settled(bb)
    finally:
        await engine.close()
    assert req.decided_by == "system:policy" and req.risk == "low" and req.artefact_id == plan.id
    raw = await bb.redis.get(bb.keys.hitl_system_proof(req.id))
    assert raw is not None and SystemProof.model_validate_json(raw).status == "approved"
    records = [r for r in await bb.audit.records() if r.subject == req.id]
    assert [(r.action, r.operator) for r in records] == [("approval_auto_requested", "Deployer"),
                                                         ("approval_auto_approved", "system:policy")]
    assert await _reported(bb, req.id) == 0
    claims, _ = await bb.list_claims()
    assert next(c for c in claims if c.artefact_id != plan.id).status == ClaimStatus.COMPLETE
    assert [c.artefact_id for c in claims].count(plan.id) == 1  # the approved plan is ordinary output


async def test_the_light_listing_leaves_a_forged_closure_to_the_full_read(
        bb: Blackboard, instance: str, cli_env: dict[str, str]) -> None:
    """``holt questions`` reads plain open requests without the models; a request marked closed in the hash is not
    plain, so the whole listing is read in full, where ``honour`` counts the unproven closure as open."""
    await bb.redis.set(bb.keys.hitl_policy, HitlPolicy().model_dump_json())  # a published policy: light read first
    await bb.redis.set(bb.keys.hitl_system_proofs_from, "1")
    plain = _q(id="q-plain", created_ms=1)
    forged = CANCELLED.model_copy(update={"id": "q-forged", "created_ms": 2})
    proven = CANCELLED.model_copy(update={"id": "q-proven", "created_ms": 3})
    for req in (plain, forged, proven):
        await bb.redis.hset(bb.keys.hitl_request(req.id), mapping=req.to_hash())
        await bb.redis.zadd(bb.keys.hitl_open, {req.id: req.created_ms})
    await bb.redis.set(bb.keys.hitl_system_proof(proven.id), SystemProof.of(proven).to_json())
    assert await _listed(cli_env, instance, "questions") == ["q-plain", "q-forged"]


async def test_real_supersede_and_cancel_are_proven_and_count(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    """The orchestrator's own closures, as holt-orchestrator: a newer version of the gated artefact supersedes the
    gate, and a person terminating the claim cancels the next one; both carry the system's proof and nothing is
    reported."""
    engine = hitl_engine(tmp_path, redis_url, instance, gated("high"))
    engine.role_users = True
    await engine.start()
    try:
        await start_goal(engine)
        first = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        design = await wait_for_artefact(bb, lambda a: a.id == first.artefact_id)
        newer = design.model_copy(update={"id": new_id(), "version": 2, "payload": "a better web service",
                                          "source_artefacts": [design.id]})
        await bb.create_artefact(newer)
        old = await wait_request(bb, lambda r: r.id == first.id and r.status == RequestStatus.SUPERSEDED)
        second = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL and r.artefact_id == newer.id)
        claim = next(c for c in (await bb.list_claims())[0] if c.artefact_id == newer.id)
        code, _, err = await holt_cli(cli_env, "debug", "terminate", claim.id, "--as", "alice", "--name", instance)
        assert code == 0, err
        cancelled = await wait_request(bb, lambda r: r.id == second.id and r.status == RequestStatus.CANCELLED,
                                       within=40)
    finally:
        await engine.close()
    assert old.decided_by == cancelled.decided_by == "system:orchestrator"
    for req in (old, cancelled):
        raw = await bb.redis.get(bb.keys.hitl_system_proof(req.id))
        assert raw is not None and SystemProof.model_validate_json(raw).matches(req)
        assert await _reported(bb, req.id) == 0
    assert await _listed(cli_env, instance, "pending") == []
