"""End-to-end: orchestrator and pups against a real Redis, agents as real processes."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.config import parse_config
from holt_core.models import ClaimStatus, GrantNotification, StructuralType
from tests.engine import Engine, make_workspace, python_agents, wait_for_artefact, wait_settled

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipe" / "holt.yml"


async def recipe_engine(tmp_path: Path, redis_url: str, instance: str, **overrides: str) -> Engine:
    text = python_agents(RECIPE.read_text())
    for old, new in overrides.items():
        text = text.replace(old, new)
    ws = make_workspace(tmp_path, example="recipe", files={"holt.yml": text})
    return Engine(redis_url, instance, ws, parse_config(text))


async def test_recipe_runs_through_every_phase_to_terminal(tmp_path: Path, redis_url: str, instance: str,
                                                          bb: Blackboard) -> None:
    engine = await recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    events: list[dict[str, object]] = []
    grants: list[tuple[str, GrantNotification]] = []  # (agent, notification)
    agent_channels = {bb.keys.agent_events(name): name for name in engine.config.agents}
    try:
        async with bb.subscribe(bb.keys.workflow_events, *agent_channels) as sub:
            goal = await engine.forage("Sourdough bread")
            terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
            await wait_settled(bb)
            while (msg := await sub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
                if str(msg["channel"]) in agent_channels:
                    grants.append((agent_channels[str(msg["channel"])],
                                   GrantNotification.model_validate_json(str(msg["data"]))))
                else:
                    events.append(json.loads(str(msg["data"])))
    finally:
        await engine.close()
    names = [e["event"] for e in events]
    assert names.count("review_rejected") == 1 and names.count("review_approved") == 1
    assert names.count("feedback_claim_created") == 1 and names.count("artefact_reworked") == 1

    arts = {a.id: a for a in (await bb.list_artefacts()).artefacts}
    by_type: dict[str, list[str]] = {}
    for a in arts.values():
        by_type.setdefault(a.type, []).append(a.id)
    drafts = sorted((arts[i] for i in by_type["RecipeDraft"]), key=lambda a: a.version)
    assert [d.version for d in drafts] == [1, 2]
    assert drafts[1].logical_id == drafts[0].logical_id
    reviews = [arts[i] for i in by_type["Review"]]
    assert sorted(json.loads(r.payload) == {} for r in reviews) == [False, True]
    rejecting = next(r for r in reviews if json.loads(r.payload))
    assert drafts[1].source_artefacts == [drafts[0].id, rejecting.id]
    assert "500 g flour" in drafts[1].payload
    assert len(by_type["NutritionNotes"]) == 1
    assert arts[by_type["NutritionNotes"][0]].source_artefacts == [drafts[1].id]
    assert terminal.type == "FormattedRecipe" and terminal.source_artefacts == [drafts[1].id]
    assert "500 g flour" in terminal.payload

    claims, _ = await bb.list_claims()
    by_target: dict[str, list[ClaimStatus]] = {}
    for c in claims:
        by_target.setdefault(c.artefact_id, []).append(c.status)
    assert by_target[goal.id] == [ClaimStatus.COMPLETE]
    # Draft v1: the original claim terminated by review feedback, the feedback claim completed.
    assert sorted(by_target[drafts[0].id]) == sorted([ClaimStatus.TERMINATED, ClaimStatus.COMPLETE])
    assert by_target[drafts[1].id] == [ClaimStatus.COMPLETE]
    v1_terminated = next(c for c in claims if c.artefact_id == drafts[0].id and c.status == ClaimStatus.TERMINATED)
    assert v1_terminated.termination_reason == (
        f"Terminated due to negative review feedback. See artefacts: [{rejecting.id}]"
    )
    v2_claim = next(c for c in claims if c.artefact_id == drafts[1].id)
    assert v2_claim.granted_review_agents == ["Reviewer"]
    assert v2_claim.granted_parallel_agents == ["Nutritionist"]
    assert v2_claim.granted_exclusive_agent == "Formatter"
    # Every grant notification names its claim's target, so pups read both at once. The feedback claim has
    # none: as in Holt, its creation on claim_events is its announcement (a Go pup would run it twice).
    targets = {c.id: c.artefact_id for c in claims}
    assert grants and all(g.artefact_id == targets[g.claim_id] for _, g in grants)
    fb_claim = next(c for c in claims if c.artefact_id == drafts[0].id and c.status == ClaimStatus.COMPLETE)
    assert fb_claim.id not in {g.claim_id for _, g in grants}
    failures = [a for a in arts.values() if a.structural_type == StructuralType.FAILURE]
    assert failures == []
    notes_claim = next(c for c in claims if c.artefact_id == by_type["NutritionNotes"][0])
    assert notes_claim.status == ClaimStatus.PENDING_REVIEW and notes_claim.phase_state is None  # dormant
    assert await bb.redis.hget(bb.keys.claim(notes_claim.id), "holt_note") == "dormant: no_bids_in_any_phase"
