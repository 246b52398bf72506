"""A Go pup on our blackboard: it queues feedback work from ``claim_events`` (as dyluth/holt's pup engine does)
and every other grant from its agent channel, so it must see a feedback claim once, and no grant for it."""

from __future__ import annotations

from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.models import Claim, ClaimStatus, GrantNotification, StructuralType
from tests.engine import wait_for_artefact, wait_settled
from tests.test_engine_e2e import recipe_engine


async def test_a_go_style_pup_queues_a_feedback_claim_once(tmp_path: Path, redis_url: str, instance: str,
                                                          bb: Blackboard) -> None:
    engine = await recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    queued: list[tuple[str, str]] = []  # (claim id, how): the Drafter's work as a Go pup would queue it
    try:
        async with bb.subscribe(bb.keys.claim_events, bb.keys.agent_events("Drafter")) as sub:
            await engine.forage("Sourdough bread")
            await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
            await wait_settled(bb)
            while (msg := await sub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
                if str(msg["channel"]) == bb.keys.claim_events:
                    claim = Claim.from_json(str(msg["data"]))
                    if claim.status == ClaimStatus.PENDING_ASSIGNMENT and claim.granted_exclusive_agent == "Drafter":
                        queued.append((claim.id, "claim_events"))
                else:
                    grant = GrantNotification.model_validate_json(str(msg["data"]))
                    queued.append((grant.claim_id, f"grant {grant.claim_type}"))
    finally:
        await engine.close()
    claims, _ = await bb.list_claims()
    [feedback] = [c for c in claims if c.status == ClaimStatus.COMPLETE and c.granted_exclusive_agent == "Drafter"
                  and c.additional_context_ids]
    assert [how for claim_id, how in queued if claim_id == feedback.id] == ["claim_events"]
    # The goal's own exclusive grant still reaches the Drafter on its channel.
    assert any(how == "grant exclusive" for _, how in queued)
    drafts = [a for a in (await bb.list_artefacts()).artefacts if a.type == "RecipeDraft"]
    assert sorted(a.version for a in drafts) == [1, 2]  # the rework ran once
