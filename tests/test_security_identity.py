"""Human acts only the named person can make (issue 12): proofs under each operator's own Redis user, forged
decisions ignored by the orchestrator, ``--as`` for admin only and audited as impersonation; real Redis, real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.exceptions import NoPermissionError, ResponseError

from holt_core.acl import role_url
from holt_core.blackboard import Blackboard, connect_redis
from holt_core.hitl.client import HitlClient
from holt_core.hitl.models import Approval, HitlRequest, RequestChange, RequestKind, RequestStatus
from holt_core.hitl.policy import HitlPolicy
from holt_core.hitl.proofs import Proof, honour
from holt_core.keys import Keys
from holt_core.models import ClaimStatus
from holt_core.operators import add_operator, operator_url, revoke_operator
from tests.clirun import holt as holt_cli
from tests.engine import poll, wait_for_artefact, wait_settled
from tests.hitl_support import runs, start_goal, wait_request
from tests.test_hitl_approvals import gated


def _env(cli_env: dict[str, str], tmp: Path, **extra: str) -> dict[str, str]:
    env = {**cli_env, "XDG_CONFIG_HOME": str(tmp / "config"), **extra}
    env.pop("HOLT_OPERATOR_TOKEN", None)
    env.update(extra)
    return env


def test_honour_takes_out_unproven_acts() -> None:
    keys = Keys("t-pure")
    req = HitlRequest(id="r1", kind=RequestKind.APPROVAL, created_ms=1, risk="high", digest="d", min_approvals=1,
                      status=RequestStatus.APPROVED, decided_by="human:bob",
                      approvals=[Approval(operator="bob", at_ms=2, digest="d", proof="n1")])
    assert honour(keys, req, {}).request.status == RequestStatus.OPEN
    good = Proof(act="approve", subject="r1", operator="bob", at_ms=2, digest="d").to_json()
    assert not honour(keys, req, {keys.proof("bob", "r1", "n1"): good}).forged
    # A proof of another act, request or digest does not count.
    for other in (Proof(act="reject", subject="r1", operator="bob", at_ms=2, digest="d"),
                  Proof(act="approve", subject="r2", operator="bob", at_ms=2, digest="d"),
                  Proof(act="approve", subject="r1", operator="bob", at_ms=2, digest="e")):
        assert honour(keys, req, {keys.proof("bob", "r1", "n1"): other.to_json()}).forged
    # min_approvals rewritten down in the hash: the policy's minimum still applies.
    policy = HitlPolicy.model_validate({"risk_levels": {"high": {"approvers": ["a"], "min_approvals": 2}}})
    assert honour(keys, req, {keys.proof("bob", "r1", "n1"): good}, policy).forged


async def test_agent_forged_approval_is_ignored_and_the_claim_stays_gated(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    from tests.hitl_support import hitl_engine

    engine = hitl_engine(tmp_path, redis_url, instance, gated("high"))
    await engine.start()
    agent = connect_redis(role_url(redis_url, "agent"))
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        # What a prompt-injected tool with the agent's Redis credentials can do: rewrite the request hash.
        key = bb.keys.hitl_request(req.id)
        forged = req.model_copy(update={
            "status": RequestStatus.APPROVED, "decided_by": "human:alice", "rev": req.rev + 1,
            "approvals": [Approval(operator="alice", at_ms=req.created_ms, digest=req.digest, proof="f00d")]})
        await agent.hset(key, mapping=forged.to_hash())
        with pytest.raises(NoPermissionError):  # and it cannot write alice's proof
            await agent.set(bb.keys.proof("alice", req.id, "f00d"), "{}")
        await agent.publish(bb.keys.hitl_events, RequestChange(
            request_id=req.id, kind=req.kind, status=RequestStatus.APPROVED, change="approved",
            claim_id=req.claim_id, rev=forged.rev).to_json())

        async def reported() -> bool:
            return any(r.action == "forged_decision_ignored" and r.subject == req.id
                       for r in await bb.audit.records())

        await poll(reported, what="the forged approval reported")
        claim = next(c for c in (await bb.list_claims())[0] if c.artefact_id == req.artefact_id)
        assert claim.status == ClaimStatus.PENDING_REVIEW
        code, out, err = await holt_cli(cli_env, "explain", claim.id, "--name", instance, "--json")
        assert code == 0, err
        assert any(r["kind"] == "open_approval" for r in json.loads(out)["reasons"]), out
        assert (await HitlClient(bb, HitlPolicy()).status(req.id)).status == RequestStatus.OPEN
        # A person's real approval still goes through on top of the forgery, and only then is the work done.
        code, _, err = await holt_cli(cli_env, "approve", req.id, "--name", instance, "--as", "alice")
        assert code == 0, err
        built = await wait_for_artefact(bb, lambda a: a.type == "Code")
        approved = await wait_request(bb, lambda r: r.id == req.id and r.status == RequestStatus.APPROVED)
        assert approved.decided_by == "human:alice" and approved.approvals[0].proof != "f00d"
        assert built.created_at_ms >= approved.decided_ms
        assert [line.split()[0] for line in runs(engine)] == ["Architect", "Implementer"]
    finally:
        await agent.aclose()
        await engine.close()


async def test_operator_cannot_act_as_another_and_as_is_admin_only(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    from tests.hitl_support import hitl_engine

    engine = hitl_engine(tmp_path, redis_url, instance, gated("critical"))
    await engine.start()
    _, bob_token = await add_operator(bb.redis, "bob", ["lead"])
    _, carol_token = await add_operator(bb.redis, "carol", ["lead"])
    bob_env = _env(cli_env, tmp_path, HOLT_OPERATOR_TOKEN=bob_token)
    bob_env["HOLT_REDIS_URL"] = operator_url(redis_url, "bob", bob_token)
    try:
        await start_goal(engine, operator="olivia")
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        code, _, err = await holt_cli(_env(cli_env, tmp_path), "approve", req.id, "--name", instance, "-j", "x")
        assert code == 1 and "no operator token" in err and "holt operator add" in err
        code, _, err = await holt_cli(bob_env, "approve", req.id, "--name", instance, "-j", "reviewed")
        assert code == 0, err
        # bob's identity cannot approve as carol: the CLI refuses --as, and Redis refuses carol's proof.
        code, _, err = await holt_cli(bob_env, "approve", req.id, "--name", instance, "--as", "carol", "-j", "x")
        assert code == 1 and "needs the admin identity" in err
        as_bob = Blackboard(connect_redis(operator_url(redis_url, "bob", bob_token)), instance)
        try:
            with pytest.raises(ResponseError, match="NOPERM"):
                await HitlClient(as_bob, engine.config.hitl).approve(req.id, operator="carol", justification="x")
        finally:
            await as_bob.close()
        # Nor the agent's user, with or without --as.
        agent_env = {**_env(cli_env, tmp_path), "HOLT_REDIS_URL": role_url(redis_url, "agent")}
        code, _, err = await holt_cli(agent_env, "approve", req.id, "--name", instance, "--as", "carol", "-j", "x")
        assert code == 1 and "needs the admin identity" in err
        now = await wait_request(bb, lambda r: r.id == req.id)
        assert now.status == RequestStatus.OPEN and now.distinct_approvers() == ["bob"]
        assert [line.split()[0] for line in runs(engine)] == ["Architect"]

        # Admin credentials may act as carol: it works, and the audit says it was impersonation.
        code, _, err = await holt_cli(cli_env, "approve", req.id, "--name", instance, "--as", "carol", "-j", "ok")
        assert code == 0, err
        await wait_for_artefact(bb, lambda a: a.type == "Code")
        await wait_settled(bb)
    finally:
        await engine.close()
    records = {r.operator: r for r in await bb.audit.records() if r.action in ("approved", "approval_added")}
    assert records["human:bob"].details.get("impersonated_by") is None
    assert records["human:carol"].details["impersonated_by"] == "holt-admin"

    # A revoked token can no longer act.
    await revoke_operator(bb.redis, "bob")
    code, _, err = await holt_cli(_env(cli_env, tmp_path, HOLT_OPERATOR_TOKEN=bob_token), "approve", req.id,
                                  "--name", instance)
    assert code == 1 and "revoked" in err
    del carol_token


async def test_cli_operator_add_save_and_act_with_the_saved_token(
        tmp_path: Path, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    env = _env(cli_env, tmp_path, HOLT_OPERATOR="dave")
    code, out, err = await holt_cli(env, "operator", "add", "dave", "--roles", "approver,operator", "--save")
    assert code == 0, err
    token_file = tmp_path / "config" / "holt" / "tokens" / "dave"
    assert token_file.exists() and (token_file.stat().st_mode & 0o777) == 0o600
    code, out, err = await holt_cli(env, "operator", "list", "--json")
    assert code == 0, err
    [dave] = [r for r in json.loads(out) if r["name"] == "dave"]
    assert dave["roles"] == ["approver", "operator"] and not dave["revoked"] and "token_sha256" not in dave
    code, _, err = await holt_cli(env, "operator", "revoke", "dave")
    assert code == 0, err
    code, out, _ = await holt_cli(env, "operator", "list", "--json")
    assert next(r for r in json.loads(out) if r["name"] == "dave")["revoked"]
    # Registering is admin only: an operator's credentials are refused.
    _, token = await add_operator(bb.redis, "erin", [])
    code, _, err = await holt_cli({**env, "HOLT_REDIS_URL": operator_url(cli_env["HOLT_REDIS_URL"], "erin", token)},
                                  "operator", "add", "mallory")
    assert code == 1 and "needs the admin identity" in err
