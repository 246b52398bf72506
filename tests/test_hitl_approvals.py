"""Approval gates with the hitl: policy: auto-approve, waiting for people, M-of-N, separation of duties,
fail-closed expiry, break-glass bypass, tool-declared actions; real Redis and real agent processes."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.hitl.models import RequestKind, RequestStatus
from holt_core.models import ClaimStatus, StructuralType
from tests.clirun import holt as holt_cli
from tests.engine import wait_for_artefact, wait_settled
from tests.hitl_support import agent, config_text, hitl_engine, runs, start_goal, wait_request

POLICY = """\
  operators:
    olivia: [approver, lead]
    alice: [approver]
    bob: [approver, lead]
    carol: [lead]
    root: [breakglass]
  bypass_role: breakglass
  risk_levels:
    medium: {{approvers: [approver]}}
    high: {{approvers: [approver]{high_extra}}}
    critical: {{approvers: [lead], min_approvals: 2, require_justification: true}}
  rules:
    - match: {{artefact_type: Design}}
      risk: {risk}
"""
AGENTS = (agent("Architect", "architect", "GoalDefined=exclusive")
          + agent("Implementer", "implementer", "Design=exclusive"))


def gated(risk: str, high_extra: str = "") -> str:
    return config_text(AGENTS, POLICY.format(risk=risk, high_extra=high_extra))


async def test_low_risk_gate_auto_approves(tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, gated("low"))
    await engine.start()
    try:
        await start_goal(engine)
        code = await wait_for_artefact(bb, lambda a: a.type == "Code")
        await wait_settled(bb)
    finally:
        await engine.close()
    req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
    assert req.status == RequestStatus.APPROVED and req.decided_by == "system:policy" and req.risk == "low"
    assert code.produced_by_role == "Implementer"
    assert "approval_auto_approved" in [r.action for r in await bb.audit.records()]


async def test_high_risk_gate_waits_for_approval_then_runs(tmp_path: Path, redis_url: str, instance: str,
                                                          bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, gated("high"))
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        design = await wait_for_artefact(bb, lambda a: a.type == "Design")
        assert req.status == RequestStatus.OPEN and req.risk == "high" and req.artefact_id == design.id
        assert req.role == "Architect" and req.started_by == "olivia" and len(req.digest) == 64
        code, out, err = await holt_cli(cli_env, "pending", "--name", instance, "--json")
        assert code == 0, err
        [item] = json.loads(out)
        assert item["id"] == req.id and item["risk"] == "high" and item["digest"] == req.digest
        assert item["requester_role"] == "Architect" and item["min_approvals"] == 1
        assert [line.split()[0] for line in runs(engine)] == ["Architect"]  # the Implementer was not granted
        claim = next(c for c in (await bb.list_claims())[0] if c.artefact_id == design.id)
        assert claim.status == ClaimStatus.PENDING_REVIEW and claim.phase_state is None
        code, out, err = await holt_cli(cli_env, "explain", claim.id, "--name", instance, "--json")
        assert code == 0, err
        reasons = json.loads(out)["reasons"]
        assert any(r["kind"] == "open_approval" and r["details"]["request_id"] == req.id for r in reasons), reasons

        code, _, err = await holt_cli(cli_env, "approve", req.id, "--name", instance, "--as", "alice",
                                      "--digest", "sha256:" + "0" * 64)
        assert code == 1 and "the payload changed" in err
        code, _, err = await holt_cli(cli_env, "approve", req.id, "--name", instance, "--as", "alice",
                                      "--digest", req.digest)
        assert code == 0, err
        built = await wait_for_artefact(bb, lambda a: a.type == "Code")
        await wait_settled(bb)
    finally:
        await engine.close()
    assert built.source_artefacts == [design.id]
    code, out, _ = await holt_cli(cli_env, "status", req.id, "--name", instance, "--json")
    done = json.loads(out)
    assert done["status"] == "approved" and done["decided_by"] == "human:alice"
    decisions = [a for a in (await bb.list_artefacts()).artefacts if a.type == "ApprovalDecision"]
    assert len(decisions) == 1 and decisions[0].produced_by_role == "human:alice"
    assert json.loads(decisions[0].payload)["digest"] == req.digest
    # The whole trail verifies; editing one HITL record breaks it.
    code, _, err = await holt_cli(cli_env, "audit", "verify", "--name", instance)
    assert code == 0, err
    entry_id, fields = [e async for e in bb.audit.entries()][-1]
    await bb.redis.xdel(bb.keys.audit, entry_id)
    await bb.redis.xadd(bb.keys.audit, {**fields, "operator": "human:mallory"})
    code, _, err = await holt_cli(cli_env, "audit", "verify", "--name", instance)
    assert code == 1 and "audit trail broken" in err


async def test_critical_gate_separation_of_duties_and_two_approvers(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, gated("critical"))
    await engine.start()
    try:
        await start_goal(engine, operator="olivia")
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)

        async def approve(who: str, *extra: str) -> tuple[int, str]:
            code, _, err = await holt_cli(cli_env, "approve", req.id, "--name", instance, "--as", who, *extra)
            return code, err

        code, err = await approve("bob")
        assert code == 1 and "needs a justification" in err
        code, err = await approve("olivia", "--justification", "looks fine")
        assert code == 1 and "started this workflow" in err
        code, err = await approve("alice", "--justification", "looks fine")
        assert code == 1 and "may not decide" in err
        code, err = await approve("bob", "--justification", "reviewed the design")
        assert code == 0, err
        code, err = await approve("bob", "--justification", "again")
        assert code == 1 and "already approved" in err
        assert (await wait_request(bb, lambda r: r.id == req.id)).status == RequestStatus.OPEN
        assert [line.split()[0] for line in runs(engine)] == ["Architect"]
        code, err = await approve("carol", "--justification", "second pair of eyes")
        assert code == 0, err
        await wait_for_artefact(bb, lambda a: a.type == "Code")
        await wait_settled(bb)
    finally:
        await engine.close()
    done = await wait_request(bb, lambda r: r.id == req.id)
    assert done.status == RequestStatus.APPROVED and done.distinct_approvers() == ["bob", "carol"]
    refused = [r for r in await bb.audit.records() if r.action == "refused"]
    assert len(refused) == 4 and {r.operator for r in refused} == {"human:bob", "human:olivia", "human:alice"}


async def test_expiry_fails_closed(tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, gated("high", ", expire_after: 1s"))
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL and r.status == RequestStatus.EXPIRED)
        await wait_settled(bb)
    finally:
        await engine.close()
    assert req.decided_by == "system:timeout" and "counts as rejected" in req.reason
    claim = next(c for c in (await bb.list_claims())[0] if c.artefact_id == req.artefact_id)
    assert claim.status == ClaimStatus.TERMINATED and "expired" in claim.termination_reason
    assert [line.split()[0] for line in runs(engine)] == ["Architect"]  # never granted
    assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "Code"]
    expired = [r for r in await bb.audit.records() if r.action == "expired"]
    assert len(expired) == 1 and expired[0].operator == "system:timeout"


async def test_bypass_opens_a_post_review_item(tmp_path: Path, redis_url: str, instance: str, bb: Blackboard,
                                              cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, gated("high"))
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        code, _, err = await holt_cli(cli_env, "approve", req.id, "--bypass", "--name", instance, "--as", "alice",
                                      "--justification", "urgent")
        assert code == 1 and "bypass role" in err
        code, _, err = await holt_cli(cli_env, "approve", req.id, "--bypass", "--name", instance, "--as", "root")
        assert code == 1 and "justification" in err
        code, out, err = await holt_cli(cli_env, "approve", req.id, "--bypass", "--name", instance, "--as", "root",
                                        "--justification", "production is down")
        assert code == 0 and "post-review item" in out.decode(), err
        await wait_for_artefact(bb, lambda a: a.type == "Code")
        await wait_settled(bb)
    finally:
        await engine.close()
    done = await wait_request(bb, lambda r: r.id == req.id)
    assert done.status == RequestStatus.BYPASSED and done.post_review_id
    code, out, _ = await holt_cli(cli_env, "pending", "--name", instance, "--json")
    assert [i["id"] for i in json.loads(out)] == [done.post_review_id]
    code, _, err = await holt_cli(cli_env, "approve", done.post_review_id, "--name", instance, "--as", "root")
    assert code == 1 and "another person" in err
    code, _, err = await holt_cli(cli_env, "approve", done.post_review_id, "--name", instance, "--as", "alice")
    assert code == 0, err
    code, out, _ = await holt_cli(cli_env, "pending", "--name", instance, "--json")
    assert json.loads(out) == []
    actions = [r.action for r in await bb.audit.records()]
    assert "bypassed" in actions and "post_review_closed" in actions


async def test_tool_declared_action_rejected_reason_goes_back_to_the_agent(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]) -> None:
    text = config_text(agent("Deployer", "deployer", "GoalDefined=exclusive", "high"),
                       POLICY.format(risk="low", high_extra=""))
    engine = hitl_engine(tmp_path, redis_url, instance, text)
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        assert req.action == "deploy" and req.target == "prod" and req.plan == {"steps": ["drain", "switch", "verify"]}
        claims, _ = await bb.list_claims()
        assert len(claims) == 1 and claims[0].status == ClaimStatus.PENDING_EXCLUSIVE  # held, the plan got no claim
        code, _, err = await holt_cli(cli_env, "reject", req.id, "--reason", "change freeze", "--name", instance,
                                      "--as", "alice")
        assert code == 0, err
        done = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(bb)
    finally:
        await engine.close()
    assert done.type == "DeployCancelled" and done.payload == "not deployed: change freeze"
    assert runs(engine)[1].endswith("DeployPlan,ApprovalDecision")
