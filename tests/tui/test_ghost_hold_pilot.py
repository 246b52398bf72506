"""The ghost hold, from the keyboard: a breakpoint holds a grant, ``i`` with plain text on its artefact ends
the claim, and the hold goes with it; the rework's hold is the only one left, and ``s`` steps it."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.breakpoints import BreakpointSpec
from holt_core.debug.client import DebugClient
from holt_core.models import ClaimStatus
from tests.debughelp import goal, recipe_engine, wait_held
from tests.engine import poll, wait_for_artefact
from tests.tui.test_control_pilot import OPERATOR, action_log, control_app, goto, in_control, type_text
from tests.tui.test_live_attach import registered, until


async def test_plain_text_review_on_a_held_claim_leaves_no_ghost_hold(tmp_path: Path, redis_url: str,
                                                                      instance: str, bb: Blackboard) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    await registered(engine, bb)
    observer = DebugClient(bb, "observer")
    try:
        await DebugClient(bb, OPERATOR).add_breakpoint(
            BreakpointSpec(decision_kind="grant_review", granted_role="Reviewer"))
        async with control_app(redis_url, instance) as app, app.run_test(size=(150, 45)) as pilot:
            await in_control(app)
            await goal(bb, "Sourdough bread")
            held = await wait_held(observer, lambda h: True, 60)
            draft = held.decision.artefact_id
            await until(lambda: [h.id for h in app.model.debug.held] == [held.hold_id], what="the held grant")

            await goto(pilot, app, draft)
            await pilot.press("i")
            await type_text(pilot, "needs more salt")
            await pilot.press("ctrl+s")

            async def ended() -> bool:
                return (await bb.get_claim(held.decision.claim_id)).status == ClaimStatus.TERMINATED

            await poll(ended, 30, "the held claim to end")
            await until(lambda: held.hold_id not in [h.id for h in app.model.debug.held], what="the hold gone")

            v2 = await wait_for_artefact(bb, lambda a: a.type == "RecipeDraft" and a.version == 2, 60)
            nxt = await wait_held(observer, lambda h: h.decision.artefact_id == v2.id, 60)
            await until(lambda: [h.id for h in app.model.debug.held] == [nxt.hold_id], what="only the new hold")
            await pilot.press("7")
            await pilot.press("s")
            await wait_held(observer, lambda h: h.hold_id != nxt.hold_id
                            and h.decision.claim_id == nxt.decision.claim_id, 60)
            await until(lambda: "stepped one decision" in action_log(app), what="the step in the action log")
            assert "already released" not in action_log(app)
    finally:
        await engine.close()
    review = next(a for a in (await bb.list_artefacts()).artefacts
                  if a.type == "Review" and a.produced_by_role == f"human:{OPERATOR}")
    assert json.loads(review.payload) == {"feedback": "needs more salt", "by": f"human:{OPERATOR}"}
