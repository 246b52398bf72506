"""Holds live and die with their decision: the ghost-hold scenario, reconciling on start, and a step that
names one decision however often it is sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.breakpoints import BreakpointSpec
from holt_core.debug.client import DebugClient
from holt_core.debug.held import HoldReason
from holt_core.decisions import DecisionKind
from holt_core.models import ClaimStatus, StructuralType
from tests.clirun import HOLT, holt
from tests.debughelp import goal, recipe_engine, wait_held
from tests.engine import poll, wait_for_artefact, wait_settled


async def test_an_injected_plain_text_review_ends_the_claim_and_its_hold_with_it(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    client = DebugClient(bb, "alice")
    try:
        await client.add_breakpoint(BreakpointSpec(decision_kind="grant_review", granted_role="Reviewer"))
        await goal(bb, "Sourdough bread")
        held = await wait_held(client, lambda h: True, 60)
        draft = held.decision.artefact_id
        claim_id = held.decision.claim_id

        # Plain text, as typed in holt-tui: the review ends the held claim and sends the draft back.
        code, out, err = await holt(cli_env, "debug", "inject-review", draft, "--payload", "needs more salt",
                                    "--as", "alice", "--json", "--name", instance)
        assert code == 0, err
        review = await bb.get_artefact(json.loads(out)["review_id"])
        assert json.loads(review.payload) == {"feedback": "needs more salt", "by": "human:alice"}

        async def ended() -> bool:
            return (await bb.get_claim(claim_id)).status == ClaimStatus.TERMINATED

        await poll(ended, 30, "the held claim to end")
        code, out, err = await holt(cli_env, "debug", "held", "--as", "alice", "--name", instance)
        assert code == 0, err
        assert held.hold_id not in out.decode() and claim_id not in out.decode()

        # The Drafter reads the review (it crashed on plain text before) and its rework is held in turn:
        # the new hold, and only it, is listed and steppable by its claim id.
        v2 = await wait_for_artefact(bb, lambda a: a.type == "RecipeDraft" and a.version == 2, 60)
        nxt = await wait_held(client, lambda h: h.decision.artefact_id == v2.id, 60)
        assert [h.hold_id for h in await client.held()] == [nxt.hold_id]
        code, out, err = await holt(cli_env, "debug", "held", "--as", "alice", "--name", instance)
        assert nxt.hold_id in out.decode() and held.hold_id not in out.decode()
        code, out, err = await holt(cli_env, "debug", "step", nxt.decision.claim_id, "--as", "alice",
                                    "--name", instance)
        assert code == 0, err
        assert nxt.hold_id in out.decode()
        await client.remove_breakpoint((await client.breakpoints())[0].id)
        await client.continue_()
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb, 60)
    finally:
        await engine.close()
    assert "revision_notes" in v2.payload and "needs more salt" in v2.payload
    released = [r for r in await bb.audit.records() if r.action == "debug_holds_released"]
    assert len(released) == 1 and released[0].subject == claim_id
    assert released[0].operator == "system:orchestrator"
    assert [h["hold_id"] for h in released[0].details["holds"]] == [held.hold_id]
    failures = [a for a in (await bb.list_artefacts()).artefacts if a.structural_type == StructuralType.FAILURE]
    assert failures == []


async def test_a_ghost_hold_left_by_an_older_version_is_dropped_when_the_orchestrator_starts(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    client = DebugClient(bb, "alice")
    try:
        await client.add_breakpoint(BreakpointSpec(decision_kind="grant_review", granted_role="Reviewer"))
        await goal(bb, "Sourdough bread")
        held = await wait_held(client, lambda h: True, 60)
    finally:
        await engine.close()
    # What an older version left behind: the claim closed, its hold still there (and released by a step).
    claim_key = bb.keys.claim(held.decision.claim_id)
    await bb.redis.hset(claim_key, mapping={"status": "terminated", "termination_reason": "old version"})
    await bb.redis.srem(bb.keys.open_claims, held.decision.claim_id)
    await client.step(held.hold_id)
    assert [h.hold_id for h in await client.held()] == [held.hold_id]

    (tmp_path / "restart").mkdir()
    engine = recipe_engine(tmp_path / "restart", redis_url, instance)
    await engine.start_orchestrator()
    try:
        assert await client.held() == []
        assert (await client.state()).stepping == set()
    finally:
        await engine.close()
    records = [r for r in await bb.audit.records() if r.action == "debug_hold_reconciled"]
    assert len(records) == 1 and records[0].details["hold_id"] == held.hold_id
    assert "terminated" in records[0].details["reason"]


async def _holt_slow(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(HOLT, *args, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_twenty_concurrent_steps_of_one_claim_step_exactly_one_decision(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    client = DebugClient(bb, "alice")
    try:
        await client.add_breakpoint(BreakpointSpec(decision_kind="grant_review", granted_role="Reviewer"))
        await goal(bb, "Sourdough bread")
        held = await wait_held(client, lambda h: True, 60)
        claim_id = held.decision.claim_id
        # Two shells, ten commands each, all naming the claim.
        # (the suite's CLI runs as admin; --as names the operator, as an admin acting for alice)
        shells = [{**cli_env}, {**cli_env, "COLUMNS": "200"}]
        results = await asyncio.gather(*(_holt_slow(shells[i % 2], "debug", "step", claim_id, "--name", instance,
                                                    "--as", "alice")
                                         for i in range(20)))
        ok = [r for r in results if r[0] == 0]
        assert len(ok) == 1, [r[2] for r in results]
        assert not [r[2] for r in results if "Traceback" in r[2]]
        # The step carried out the held grant; the claim's next decision is held again and nobody stepped it.
        nxt = await wait_held(client, lambda h: h.hold_id != held.hold_id, 60)
        assert nxt.reason == HoldReason.STEP and nxt.decision.claim_id == claim_id
        await asyncio.sleep(0.5)
        [still] = await client.held()
        assert still.hold_id == nxt.hold_id and still.release is None
        assert nxt.decision.kind != DecisionKind.GRANT_REVIEW
    finally:
        await engine.close()
    steps = [r for r in await bb.audit.records() if r.action == "debug_step"]
    assert len(steps) == 1 and steps[0].details["decisions"][0]["hold_id"] == held.hold_id
