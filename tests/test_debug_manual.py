"""Manual actions: injected reviews (feedback re-opens a completed claim's work; {} approves) and terminate."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.client import DebugClient
from holt_core.models import ClaimStatus, Phase, StructuralType
from holt_core.orchestrator import human_feedback_claim_id
from tests.clirun import holt
from tests.debughelp import goal, poll, recipe_engine
from tests.engine import wait_for_artefact, wait_settled
from tests.test_orchestrator_crash import GATE, gated


async def test_injected_feedback_on_a_completed_claim_produces_a_rework_from_the_original_producer(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    try:
        await goal(bb, "Sourdough bread")
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb, 60)
        v2 = next(a for a in (await bb.list_artefacts()).artefacts if a.type == "RecipeDraft" and a.version == 2)
        v2_claim = await bb.get_claim(await bb.claim_id_for_artefact(v2.id) or "")
        assert v2_claim.status == ClaimStatus.COMPLETE

        code, out, err = await holt(cli_env, "debug", "inject-review", v2.id[:8], "--payload",
                                    '{"issue": "needs more salt"}', "--as", "carol", "--json", "--name", instance)
        assert code == 0, err
        injected = json.loads(out)
        assert injected["approval"] is False and "Drafter" in injected["effect"]
        v3 = await wait_for_artefact(bb, lambda a: a.type == "RecipeDraft" and a.version == 3, 60)
        await wait_settled(bb, 60)
    finally:
        await engine.close()
    review = await bb.get_artefact(injected["review_id"])
    assert review.produced_by_role == "human:carol" and review.source_artefacts == [v2.id]
    assert v3.produced_by_role == "Drafter" and v3.logical_id == v2.logical_id
    assert v3.source_artefacts == [v2.id, review.id]
    fb = await bb.get_claim(human_feedback_claim_id(review.id))
    assert fb.status == ClaimStatus.COMPLETE and fb.granted_exclusive_agent == "Drafter"
    assert (await bb.get_claim(v2_claim.id)).status == ClaimStatus.COMPLETE  # the completed claim is untouched
    arts = (await bb.list_artefacts()).artefacts
    assert len([a for a in arts if a.type == "RecipeDraft" and a.version == 3]) == 1  # exactly once
    records = [r for r in await bb.audit.records() if r.action == "debug_inject_review"]
    assert len(records) == 1 and records[0].operator == "human:carol" and records[0].subject == v2.id


async def test_injected_approval_counts_in_a_pending_review_phase_then_terminate(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    # The reviewer never finishes on its own: only the operator's approval can move the phase on.
    # The nutritionist waits too, so the claim is still open when it is terminated.
    engine = recipe_engine(tmp_path, redis_url, instance, extra_files={"gate.py": GATE},
                           transform=lambda t: gated(gated(t, "Reviewer", "command", "review", "RecipeDraft"),
                                                     "Nutritionist", "command", "parallel", "RecipeDraft"))
    (engine.workspace / "release").mkdir()
    await engine.start()
    client = DebugClient(bb, "carol")
    try:
        await goal(bb, "Sourdough bread")
        draft = await wait_for_artefact(bb, lambda a: a.type == "RecipeDraft", 60)

        async def in_review() -> bool:
            claim_id = await bb.claim_id_for_artefact(draft.id)
            claim = await bb.get_claim(claim_id) if claim_id else None
            return bool(claim and claim.phase_state and claim.phase_state.current == Phase.REVIEW)

        await poll(in_review, 60)
        claim_id = await bb.claim_id_for_artefact(draft.id) or ""
        why = await client.explain(claim_id)
        assert any(r.kind == "waiting_for_output" and r.waiting_for == ["Reviewer"] for r in why.reasons)

        injected = await client.inject_review(draft.id, "{}")
        assert injected.approval and "Reviewer" in injected.effect

        async def parallel() -> bool:
            return (await bb.get_claim(claim_id)).granted_parallel_agents == ["Nutritionist"]

        await poll(parallel, 30)
        assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "Review"
                    and not a.produced_by_role.startswith("human:")]

        code, out, err = await holt(cli_env, "debug", "terminate", claim_id, "--reason", "enough", "--as", "carol",
                                    "--json", "--name", instance)
        assert code == 0, err
        assert json.loads(out)["status"] == "terminated"
        for stage in ("review", "parallel"):
            (engine.workspace / "release" / stage).write_text("go")
        await wait_for_artefact(bb, lambda a: a.type == "NutritionNotes", 30)
        await wait_settled(bb, 60)
        assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "FormattedRecipe"]
        code, _, err = await holt(cli_env, "debug", "terminate", claim_id, "--as", "carol", "--name", instance)
        assert code == 1 and "already terminated" in err
    finally:
        for stage in ("review", "parallel"):
            (engine.workspace / "release" / stage).write_text("go")
        await engine.close()
    claim = await bb.get_claim(claim_id)
    assert claim.status == ClaimStatus.TERMINATED and claim.termination_reason == "Terminated by human:carol: enough"
    assert not await bb.redis.sismember(bb.keys.open_claims, claim_id)
    records = [r for r in await bb.audit.records() if r.action == "debug_terminate"]
    assert len(records) == 1 and records[0].operator == "human:carol" and records[0].subject == claim_id
