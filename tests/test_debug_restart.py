"""A held decision survives SIGKILL of the orchestrator; a command sent while it is down is carried out."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.breakpoints import BreakpointSpec
from holt_core.debug.client import DebugClient
from holt_core.decisions import DecisionKind
from holt_core.models import ClaimStatus, StructuralType
from tests.debughelp import goal, recipe_engine, wait_held
from tests.engine import wait_for_artefact, wait_settled
from tests.test_orchestrator_crash import start_orchestrator_process


async def test_sigkilled_orchestrator_comes_back_holding_and_carries_out_a_command_sent_while_down(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    ws = engine.workspace
    orch = await start_orchestrator_process(redis_url, instance, ws)
    client = DebugClient(bb, "alice", wait_applied_s=0.5)
    try:
        await engine.start_pups()
        bp = await client.add_breakpoint(BreakpointSpec(decision_kind="grant_review", granted_role="Reviewer"))
        assert await client.applied(10)
        await goal(bb, "Sourdough bread")
        held = await wait_held(client, lambda h: h.decision.kind == DecisionKind.GRANT_REVIEW, 60)
        claim_id = held.decision.claim_id
        before = await bb.redis.hgetall(bb.keys.claim(claim_id))

        orch.send_signal(signal.SIGKILL)
        await orch.wait()
        orch = await start_orchestrator_process(redis_url, instance, ws)  # ready = recovered every claim
        # Still held, and recovery granted nothing it should not.
        assert [h.hold_id for h in await client.held()] == [held.hold_id]
        assert await bb.redis.hgetall(bb.keys.claim(claim_id)) == before
        claim = await bb.get_claim(claim_id)
        assert claim.status == ClaimStatus.PENDING_REVIEW and claim.phase_state is None
        assert claim.granted_review_agents == []
        assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "Review"]

        # A command sent while no orchestrator runs is not lost.
        orch.send_signal(signal.SIGKILL)
        await orch.wait()
        await client.continue_(claim_id)
        assert (await client.held())[0].release == "continue"
        orch = await start_orchestrator_process(redis_url, instance, ws)
        # Carried out: the review happens (it rejects v1), and v2's review grant is the next hit.
        v2 = await wait_held(client, lambda h: h.decision.kind == DecisionKind.GRANT_REVIEW
                             and h.artefact is not None and h.artefact.version == 2, 60)
        assert v2.decision.claim_id != claim_id
        await client.remove_breakpoint(bp.id)
        await client.continue_()
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb, 60)
    finally:
        if orch.returncode is None:
            orch.send_signal(signal.SIGTERM)
            await orch.wait()
        await engine.close()
    arts = (await bb.list_artefacts()).artefacts
    assert Counter(a.type for a in arts) == Counter(
        {"GoalDefined": 1, "RecipeDraft": 2, "Review": 2, "NutritionNotes": 1, "FormattedRecipe": 1})
    actions = [r.action for r in await bb.audit.records()]
    assert actions.count("debug_decision_held") == 2 and "debug_continue" in actions
    assert (await bb.audit.verify()).ok
