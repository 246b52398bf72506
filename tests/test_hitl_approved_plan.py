"""A tool output that declares ``requires_approval`` is held until decided. Approved, it is a normal new artefact:
its claim is created once, live (not only by the replay after a restart), and a restart adds none. Rejected, it
never gets a claim, live or after a restart. Real Redis, real agent processes, the CLI for the decision."""

from __future__ import annotations

from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.hitl.models import RequestKind
from holt_core.models import StructuralType
from tests.clirun import holt as holt_cli
from tests.engine import poll, wait_for_artefact, wait_settled
from tests.hitl_support import agent, config_text, hitl_engine, runs, start_goal, wait_request

POLICY = """\
  operators:
    alice: [approver]
  risk_levels:
    medium: {approvers: [approver]}
    high: {approvers: [approver]}
    critical: {approvers: [approver]}
"""
TEXT = config_text(agent("Deployer", "deployer", "GoalDefined=exclusive", "high")
                   + agent("Runner", "implementer", "DeployPlan=exclusive"), POLICY)


async def _claims_on(bb: Blackboard, artefact_id: str) -> list[str]:
    claims, _ = await bb.list_claims()
    return [c.id for c in claims if c.artefact_id == artefact_id]


async def test_approved_plan_gets_its_claim_live_once(tmp_path: Path, redis_url: str, instance: str,
                                                     bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, TEXT)
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        assert await _claims_on(bb, req.artefact_id) == []  # held while undecided
        code, _, err = await holt_cli(cli_env, "approve", req.id, "--name", instance, "--as", "alice")
        assert code == 0, err
        code_art = await wait_for_artefact(bb, lambda a: a.type == "Code", 25)
        assert code_art.source_artefacts == [req.artefact_id]
        await wait_settled(bb)
    finally:
        await engine.close()
    first = await _claims_on(bb, req.artefact_id)
    assert len(first) == 1
    # A restart replays every artefact: the approved plan keeps its one claim and the Runner does not run again.
    (tmp_path / "again").mkdir()
    again = hitl_engine(tmp_path / "again", redis_url, instance, TEXT)
    await again.start()
    try:
        await wait_settled(bb)
        assert await _claims_on(bb, req.artefact_id) == first
    finally:
        await again.close()
    assert len([line for line in runs(engine) if line.startswith("Runner DeployPlan ")]) == 1
    assert [line for line in runs(again) if line.startswith("Runner ")] == []


async def test_rejected_plan_never_gets_a_claim(tmp_path: Path, redis_url: str, instance: str,
                                               bb: Blackboard, cli_env: dict[str, str]) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, TEXT)
    await engine.start()
    try:
        await start_goal(engine)
        req = await wait_request(bb, lambda r: r.kind == RequestKind.APPROVAL)
        code, _, err = await holt_cli(cli_env, "reject", req.id, "--reason", "freeze", "--name", instance,
                                      "--as", "alice")
        assert code == 0, err
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL)
        await wait_settled(bb)
    finally:
        await engine.close()
    assert await _claims_on(bb, req.artefact_id) == []
    (tmp_path / "again").mkdir()
    again = hitl_engine(tmp_path / "again", redis_url, instance, TEXT)
    await again.start()
    try:
        await poll(lambda: again.orchestrator is not None and again.orchestrator.ready.is_set())
        await wait_settled(bb)
        assert await _claims_on(bb, req.artefact_id) == []
    finally:
        await again.close()
