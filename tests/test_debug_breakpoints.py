"""Breakpoints and stepping against the real engine: real Redis, real agent processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from holt_core.blackboard import Blackboard
from holt_core.debug.breakpoints import BreakpointAction, BreakpointSpec, hit_condition_met
from holt_core.debug.client import DebugClient
from holt_core.debug.held import HoldReason
from holt_core.decisions import Decision, DecisionKind
from holt_core.errors import InvalidInput
from holt_core.models import ClaimStatus, StructuralType
from tests.debughelp import changed, claim_revs, goal, poll, recipe_engine, wait_held
from tests.engine import wait_for_artefact, wait_settled


def _decision(**over: object) -> Decision:
    base: dict[str, object] = dict(kind=DecisionKind.GRANT_REVIEW, claim_id="c", artefact_id="a",
                                   artefact_type="RecipeDraft", structural_type="Standard",
                                   produced_by_role="Drafter", claim_status="pending_review", summary="s",
                                   granted_roles=("Reviewer",))
    base.update(over)
    return Decision(**base)  # type: ignore[arg-type]


def test_breakpoint_matching_and_hit_conditions() -> None:
    from holt_core.debug.breakpoints import Breakpoint

    def bp(**spec: object) -> Breakpoint:
        return Breakpoint(**BreakpointSpec(**spec).model_dump(), id="b", created_by="t", created_at_ms=0)  # type: ignore[arg-type]

    assert bp(artefact_type="Recipe*").matches(_decision())
    assert not bp(artefact_type="Goal*").matches(_decision())
    assert bp(granted_role="Reviewer", decision_kind="grant_review").matches(_decision())
    assert not bp(granted_role="Formatter").matches(_decision())
    assert not bp(claim_status="pending_exclusive").matches(_decision())
    assert bp(produced_by_role="Drafter", structural_type="Standard").matches(_decision())
    assert bp().matches(_decision(kind=DecisionKind.COMPLETE))
    assert [hit_condition_met(">=3", n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert [hit_condition_met("%2", n) for n in (1, 2, 3, 4)] == [False, True, False, True]
    assert [hit_condition_met("==2", n) for n in (1, 2, 3)] == [False, True, False]
    for bad in ({"artefact_type": "[]"}, {"decision_kind": "nope"}, {"hit_condition": "often"},
                {"claim_status": "busy"}, {"structural_type": "Thing"}):
        with pytest.raises((ValueError, InvalidInput)):
            BreakpointSpec(**bad)  # type: ignore[arg-type]


async def test_hold_breakpoint_holds_only_matching_claims_and_continue_runs_to_next_hit(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    client = DebugClient(bb, "alice")
    try:
        bp = await client.add_breakpoint(BreakpointSpec(artefact_type="Special*", action=BreakpointAction.HOLD))
        special = await goal(bb, "Rye bread", "SpecialGoal")
        normal = await goal(bb, "Sourdough bread")
        held = await wait_held(client, lambda h: h.subject == special.id)
        assert held.decision.kind == DecisionKind.CREATE_CLAIM and held.reason == HoldReason.BREAKPOINT
        assert held.breakpoint_id == bp.id and held.artefact is not None and held.artefact.type == "SpecialGoal"
        # The other workflow runs to completion meanwhile.
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        assert await bb.claim_id_for_artefact(special.id) is None  # held: no claim was created
        assert await bb.claim_id_for_artefact(normal.id) is not None
        assert [h.subject for h in await client.held()] == [special.id]

        # continue: the claim is created and runs on to the next hit (its grant matches the same breakpoint).
        await client.continue_(special.id)
        nxt = await wait_held(client, lambda h: h.decision.artefact_id == special.id
                              and h.decision.kind == DecisionKind.GRANT_EXCLUSIVE)
        assert nxt.bids == {"Drafter": "exclusive", "Reviewer": "ignore", "Nutritionist": "ignore",
                            "Formatter": "ignore"}
        assert (await client.breakpoints())[0].hits == 2
        claim = await bb.get_claim(nxt.decision.claim_id)
        assert claim.status == ClaimStatus.PENDING_REVIEW and claim.phase_state is None
        await client.remove_breakpoint(bp.id)
        await client.continue_()
        await wait_settled(bb, 60)
    finally:
        await engine.close()
    terminals = [a for a in (await bb.list_artefacts()).artefacts if a.structural_type == StructuralType.TERMINAL]
    assert len(terminals) == 2
    actions = [r.action for r in await bb.audit.records()]
    for action in ("debug_breakpoint_added", "debug_decision_held", "debug_continue",
                   "debug_held_decision_carried_out", "debug_breakpoint_removed"):
        assert action in actions
    assert (await bb.audit.verify()).ok


async def test_stop_enters_full_control_and_each_step_carries_out_exactly_one_decision(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    client = DebugClient(bb, "alice")
    try:
        await client.add_breakpoint(BreakpointSpec(decision_kind="create_claim", artefact_type="GoalDefined",
                                                   action=BreakpointAction.STOP))
        await goal(bb, "Sourdough bread")
        first = await wait_held(client, lambda h: h.decision.kind == DecisionKind.CREATE_CLAIM)
        assert (await client.mode()).full_control
        assert first.reason == HoldReason.BREAKPOINT
        kinds: list[str] = []
        for _ in range(5):
            # Every decision now waits: let agents deliver their facts, then one step = one claim write.
            oldest = await wait_held(client, lambda h: True)
            before = await claim_revs(bb)
            await client.step()
            await poll(lambda before=before: _differs(bb, before), 30)  # type: ignore[misc]
            after = await claim_revs(bb)
            for _ in range(10):  # and nothing more follows on its own
                await asyncio.sleep(0.1)
                assert await claim_revs(bb) == after
            diff = changed(before, after)
            assert len(diff) == 1, diff
            (_claim_id, (old, new)), = diff.items()
            assert new == old + 1
            kinds.append(oldest.decision.kind.value)
            assert oldest.reason in (HoldReason.FULL_CONTROL, HoldReason.BREAKPOINT)
        assert kinds[:2] == ["create_claim", "grant_exclusive"]
        assert set(kinds[2:]) <= {"create_claim", "complete", "grant_review"}
        released = await client.resume()
        assert not released.mode.full_control
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb, 60)
    finally:
        await engine.close()
    steps = [r for r in await bb.audit.records() if r.action == "debug_step"]
    assert len(steps) == 5 and {r.operator for r in steps} == {"human:alice"}


async def _differs(bb: Blackboard, before: dict[str, int]) -> bool:
    return await claim_revs(bb) != before


async def test_skip_drops_the_decision_and_leaves_the_claim_untouched(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    orch = await engine.start_orchestrator()
    await engine.start_pups()
    client = DebugClient(bb, "alice")
    try:
        await client.add_breakpoint(BreakpointSpec(decision_kind="grant_review", granted_role="Reviewer"))
        await goal(bb, "Sourdough bread")
        held = await wait_held(client, lambda h: True, 60)
        claim_id = held.decision.claim_id
        before = await bb.redis.hgetall(bb.keys.claim(claim_id))
        skipped = await client.skip(claim_id)
        assert skipped.decisions[0].subject == claim_id
        await poll(lambda: _no_holds(client))
        await orch.sweep()  # re-derives every claim's next decision: the skipped one stays dropped
        await orch.advance(claim_id)
        assert await bb.redis.hgetall(bb.keys.claim(claim_id)) == before
        assert await client.held() == []
        assert not [a for a in (await bb.list_artefacts()).artefacts if a.type == "Review"]
        why = await client.explain(claim_id)
        assert next(r.kind for r in why.reasons if r.blocking) == "skipped" and not why.moving
    finally:
        await engine.close()
    assert "debug_skip" in [r.action for r in await bb.audit.records()]


async def _no_holds(client: DebugClient) -> bool:
    return not await client.held()


async def test_step_outside_full_control_holds_the_next_decision_of_the_same_claim(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    client = DebugClient(bb, "alice")
    try:
        await client.add_breakpoint(BreakpointSpec(decision_kind="create_claim", artefact_type="GoalDefined"))
        target = await goal(bb, "Sourdough bread")
        await wait_held(client, lambda h: h.subject == target.id)
        await client.step(target.id[:8])
        nxt = await wait_held(client, lambda h: h.decision.artefact_id == target.id
                              and h.decision.kind == DecisionKind.GRANT_EXCLUSIVE)
        assert nxt.reason == HoldReason.STEP and nxt.breakpoint_id is None
        assert not (await client.mode()).full_control
        assert (await bb.get_claim(nxt.decision.claim_id)).phase_state is None  # not granted
        await client.continue_(nxt.decision.claim_id)
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb, 60)
    finally:
        await engine.close()
    assert await client.held() == []
