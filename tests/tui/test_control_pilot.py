"""Control from the keyboard against the real Redis, a running orchestrator and real agent processes.

The app uses the real sources (``attach_sources``: ``HitlInboxSource`` and ``CoreDebugSource``); every test
presses keys only, then checks the effect on the blackboard, the request store and the audit trail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Label

from holt_core.blackboard import Blackboard
from holt_core.cli.common import redis_client
from holt_core.debug.client import DebugClient
from holt_core.hitl.models import RequestKind, RequestStatus
from holt_core.hitl.requests import post_goal
from holt_core.keys import Keys
from holt_core.models import Artefact, ClaimStatus, StructuralType, new_id
from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.core_sources import attach_sources
from holt_tui.feed import FeedItem
from holt_tui.reader import Reader
from holt_tui.screens.dialogs import BreakpointDialog
from holt_tui.widgets.views import BreakpointsList, HeldList, InboxList, TextLines
from tests.debughelp import changed, claim_revs, goal, recipe_engine, wait_held
from tests.engine import Engine, poll, wait_for_artefact, wait_settled
from tests.hitl_support import APPROVERS_POLICY, agent, config_text, hitl_engine, runs, wait_request
from tests.tui.test_live_attach import registered, until

OPERATOR = "alice"


@asynccontextmanager
async def control_app(redis_url: str, instance: str, operator: str = OPERATOR) -> AsyncIterator[HoltTui]:
    """The app as ``holt-tui attach`` builds it: the real reader and the real control sources."""
    config = TuiConfig.frozen()
    control = redis_client(redis_url, client_name="holt-tui-control")
    sources = attach_sources(control, Keys(instance), operator)

    async def start(sink: Callable[[FeedItem], None]) -> None:
        await Reader(redis_url, instance, sink, sources, config).run()

    try:
        yield HoltTui(instance, start, config=config, sources=sources, operator=operator)
    finally:
        await control.aclose()


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*("space" if ch == " " else ch for ch in text))


async def goto(pilot: Pilot[Any], app: HoltTui, artefact_id: str) -> None:
    """Select an artefact with the ``:goto`` command line, as an operator would."""
    await until(lambda: artefact_id in app.model.artefacts, what=f"artefact {artefact_id[:8]} in the model")
    await pilot.press("colon", *f"goto {artefact_id[:12]}", "enter")
    await until(lambda: app.selected_artefact == artefact_id, what="the selection")


async def in_control(app: HoltTui) -> None:
    await until(lambda: app.lease.held and app.model.connection == "live", what="control and a live connection")


def inspector_text(app: HoltTui) -> str:
    return "\n".join(t.plain for t in app.query_one("#inspector-view", TextLines).items)


def action_log(app: HoltTui) -> str:
    return "\n".join(t.plain for t in app.action_log)


# ------------------------------------------------------------------------------------------------ inbox

HITL_AGENTS = (agent("Asker", "asker", "AskGoal=exclusive", "human")
               + agent("Architect", "architect", "GoalDefined=exclusive")
               + agent("Implementer", "implementer", "Design=exclusive"))


async def started(engine: Engine, text: str, type_: str = "GoalDefined") -> Artefact:
    art = Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                   type=type_, payload=text, source_artefacts=[], produced_by_role="user")
    return await post_goal(engine.boards[0], art, "olivia")  # olivia starts; alice decides (separation of duties)


async def select_inbox_item(pilot: Pilot[Any], app: HoltTui, item_id: str) -> None:
    lst = app.query_one(InboxList)
    await until(lambda: any(i.id == item_id for i in lst.items), what=f"request {item_id[:8]} in the inbox")
    lst.focus()
    await pilot.press("g", *(["j"] * [i.id for i in lst.items].index(item_id)))
    assert lst.current_item is not None and lst.current_item.id == item_id


async def test_answer_approve_and_reject_from_the_inbox(tmp_path: Path, redis_url: str, instance: str,
                                                       bb: Blackboard) -> None:
    engine = hitl_engine(tmp_path, redis_url, instance, config_text(HITL_AGENTS, APPROVERS_POLICY))
    await engine.start()
    await registered(engine, bb)
    try:
        await started(engine, "pick a database", "AskGoal")
        first = await started(engine, "service one")
        second = await started(engine, "service two")
        question = await wait_request(bb, lambda r: r.kind == RequestKind.QUESTION)
        gates = {}
        for goal_artefact in (first, second):
            design = await wait_for_artefact(bb, lambda a, g=goal_artefact: a.type == "Design"
                                             and a.source_artefacts == [g.id])
            gates[goal_artefact.id] = (design, await wait_request(
                bb, lambda r, d=design: r.kind == RequestKind.APPROVAL and r.artefact_id == d.id))
        (design1, gate1), (design2, gate2) = gates[first.id], gates[second.id]
        assert gate1.risk == "high" and gate1.status == RequestStatus.OPEN

        async with control_app(redis_url, instance) as app, app.run_test(size=(150, 45)) as pilot:
            await in_control(app)
            await pilot.press("6")
            # Answer the question.
            await select_inbox_item(pilot, app, question.id)
            await pilot.press("a")
            await type_text(pilot, "PostgreSQL 16")
            await pilot.press("ctrl+s")
            terminal = await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL
                                               and a.produced_by_role == "Asker")
            assert terminal.payload.endswith("answer was: PostgreSQL 16")

            # Approve the first gate (the Implementer then builds its design)...
            await select_inbox_item(pilot, app, gate1.id)
            assert "risk high" in app.query_one("#inbox-detail").items[1].plain  # type: ignore[attr-defined]
            await pilot.press("a")
            await type_text(pilot, "design reviewed")
            await pilot.press("ctrl+s")
            code = await wait_for_artefact(bb, lambda a: a.type == "Code")
            assert code.source_artefacts == [design1.id]

            # ...and reject the second with a reason: its gated work never runs.
            await select_inbox_item(pilot, app, gate2.id)
            await pilot.press("r")
            await type_text(pilot, "not this quarter")
            await pilot.press("ctrl+s")
            rejected = await wait_request(bb, lambda r: r.id == gate2.id and r.status == RequestStatus.REJECTED)
            await until(lambda: gate2.id not in {i.id for i in app.query_one(InboxList).items}, what="inbox update")
            await wait_settled(bb)
            log = action_log(app)
        assert f"answer {question.id[:8]}: answered" in log and f"approve {gate1.id[:8]}: approved" in log
        assert f"reject {gate2.id[:8]}: rejected" in log
    finally:
        await engine.close()

    approved = await wait_request(bb, lambda r: r.id == gate1.id)
    assert approved.status == RequestStatus.APPROVED and approved.decided_by == "human:alice"
    assert rejected.decided_by == "human:alice" and rejected.reason == "not this quarter"
    assert (await wait_request(bb, lambda r: r.id == question.id)).status != RequestStatus.OPEN
    codes = [a for a in (await bb.list_artefacts()).artefacts if a.type == "Code"]
    assert [c.source_artefacts for c in codes] == [[design1.id]]  # nothing was built from the rejected design
    assert [line.split()[1] for line in runs(engine) if line.startswith("Implementer")] == ["Design"]
    claim2 = next(c for c in (await bb.list_claims())[0] if c.artefact_id == design2.id)
    assert claim2.granted_exclusive_agent in ("", None)
    records = {(r.operator, r.action, r.subject) for r in await bb.audit.records()}
    assert ("human:alice", "question_answered", question.id) in records
    assert ("human:alice", "approved", gate1.id) in records
    assert ("human:alice", "rejected", gate2.id) in records


# ------------------------------------------------------------------------------------------------ debugger

FEEDBACK = '{"issue": "more salt please"}'


async def test_breakpoint_step_continue_terminate_and_inject_from_the_keyboard(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    await registered(engine, bb)
    observer = DebugClient(bb, "observer")
    try:
        first = await goal(bb, "Sourdough bread")
        await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
        await wait_settled(bb, 60)
        drafts = {a.version: a for a in (await bb.list_artefacts()).artefacts if a.type == "RecipeDraft"}
        assert sorted(drafts) == [1, 2]

        async with control_app(redis_url, instance) as app, app.run_test(size=(150, 45)) as pilot:
            await in_control(app)
            # b on the selected artefact: a breakpoint on its type.
            await goto(pilot, app, drafts[1].id)
            await pilot.press("b")
            await until(lambda: len(app.model.debug.breakpoints) == 1, what="the breakpoint in the panel")
            [bp] = await observer.breakpoints()
            assert bp.artefact_type == "RecipeDraft" and bp.enabled

            # A second workflow stops at its first draft.
            second = await goal(bb, "Rye bread")
            held = await wait_held(observer, lambda h: h.artefact is not None and h.artefact.type == "RecipeDraft")
            draft = held.decision.artefact_id
            goal_claim = await bb.claim_id_for_artefact(second.id) or ""

            async def goal_claim_done() -> bool:
                return (await bb.get_claim(goal_claim)).status == ClaimStatus.COMPLETE

            await until_async(goal_claim_done, "the goal's claim to complete")
            await until(lambda: any(h.artefact_id == draft for h in app.model.debug.held), what="the held decision")
            await pilot.press("7")
            assert app.query_one(HeldList).current_item.artefact_id == draft

            # s carries out exactly that one decision: one claim written once, the next decision held again.
            before = await claim_revs(bb)
            await pilot.press("s")
            step_held = await wait_held(observer, lambda h: h.decision.artefact_id == draft
                                        and h.hold_id != held.hold_id)
            after = await claim_revs(bb)
            diff = changed(before, after)
            assert len(diff) == 1, diff
            (claim_id, (old, new)), = diff.items()
            assert new == old + 1 and step_held.reason.value == "step" and step_held.decision.claim_id == claim_id
            for _ in range(5):  # and nothing more follows on its own
                await asyncio.sleep(0.1)
                assert await claim_revs(bb) == after
            phase_before = (await bb.get_claim(claim_id)).phase_state

            # The inspector's "why not moving" is the debug plane's explanation (not the model's own guess).
            await goto(pilot, app, draft)
            await pilot.press("1")
            await until(lambda: "• held: " in inspector_text(app) and "stepping this claim" in inspector_text(app),
                        what="the explanation in the inspector")
            assert "held by the debugger" not in inspector_text(app)
            await pilot.press("7")

            # c carries it out and runs on to the breakpoint's next hit.
            await until(lambda: any(h.id == step_held.hold_id for h in app.model.debug.held), what="the step hold")
            await pilot.press("c")
            next_held = await wait_held(observer, lambda h: h.hold_id not in (held.hold_id, step_held.hold_id))
            assert next_held.reason.value == "breakpoint"
            granted = await bb.get_claim(claim_id)
            assert phase_before is None and granted.phase_state is not None  # the held grant was carried out

            # t terminates the selected draft's open claim, with a reason.
            await goto(pilot, app, draft)
            await until(lambda: app._open_claim_of_selected() == claim_id, what="the open claim in the model")
            await pilot.press("t")
            await type_text(pilot, "wrong flour")
            await pilot.press("ctrl+s")

            async def terminated() -> bool:
                return (await bb.get_claim(claim_id)).status == ClaimStatus.TERMINATED

            await until_async(terminated, "the claim to be terminated")

            # b again on a draft disables the breakpoint; then i injects feedback on the first workflow's draft.
            await pilot.press("b")
            await until(lambda: not app.model.debug.breakpoints[0].enabled, what="the breakpoint disabled")
            assert await observer.held() == []  # terminating dropped the claim's held decision
            v2 = drafts[2]
            await goto(pilot, app, v2.id)
            await pilot.press("i")
            await type_text(pilot, FEEDBACK)  # the recipe drafter reads a review's payload as JSON
            await pilot.press("ctrl+s")
            v3 = await wait_for_artefact(bb, lambda a: a.type == "RecipeDraft" and a.version == 3
                                         and a.logical_id == v2.logical_id, 60)
            await until(lambda: f"review {v2.id[:8]}: feedback injected" in action_log(app), what="the action log")
            log = action_log(app)
        assert "break RecipeDraft: breakpoint on RecipeDraft added" in log
        assert f"step {held.decision.kind.value} " in log and ": stepped one decision" in log
        assert f"continue {step_held.decision.kind.value} {claim_id[:8]}: continued" in log
        assert f"terminate {claim_id[:8]}: claim terminated" in log
        assert "break RecipeDraft: breakpoint on RecipeDraft disabled" in log
        await wait_settled(bb, 60)
    finally:
        await engine.close()

    claim = await bb.get_claim(claim_id)
    assert claim.termination_reason == "Terminated by human:alice: wrong flour"
    review = next(a for a in (await bb.list_artefacts()).artefacts
                  if a.type == "Review" and a.produced_by_role == "human:alice")
    assert review.source_artefacts == [v2.id] and review.payload == FEEDBACK
    assert v3.produced_by_role == "Drafter" and v3.source_artefacts == [v2.id, review.id]
    assert first.id != second.id
    records = [(r.operator, r.action, r.subject) for r in await bb.audit.records()]
    ops = {(op, action) for op, action, _ in records}
    for action in ("debug_breakpoint_added", "debug_step", "debug_continue", "debug_breakpoint_disabled",
                   "debug_lease_taken"):
        assert ("human:alice", action) in ops, action
    assert ("human:alice", "debug_terminate", claim_id) in records
    assert ("human:alice", "debug_inject_review", v2.id) in records


# ------------------------------------------------------------------------------------------------ breakpoints panel


def footer_actions(app: HoltTui) -> dict[str, str]:
    """key -> action of every binding the footer shows now (enabled or not)."""
    return {key: b.binding.action.removeprefix("app.") for key, b in app.screen.active_bindings.items()
            if b.binding.show}


async def test_breakpoints_panel_add_enable_delete_and_pause_resume(tmp_path: Path, redis_url: str, instance: str,
                                                                    bb: Blackboard) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start_orchestrator()  # breakpoints and modes are taken in by the orchestrator
    await registered(engine, bb)
    observer = DebugClient(bb, "observer")
    try:
        async with control_app(redis_url, instance) as app, app.run_test(size=(150, 45)) as pilot:
            await in_control(app)
            await until(lambda: app.model.debug.supported, what="the debug snapshot")
            await pilot.pause(0.1)
            keys = footer_actions(app)
            assert "B" not in keys and "e" not in keys and "d" not in keys  # not on the inspector
            assert keys["p"] == "pause"
            await pilot.press("7")
            await pilot.pause(0.1)
            keys = footer_actions(app)
            assert keys["B"] == "add_breakpoint" and "e" not in keys and "d" not in keys  # nothing to select yet

            # B: a type glob and conditions by their short names.
            await pilot.press("B", "backspace", *"Recipe*", "tab")
            await type_text(pilot, "role=Drafter kind=grant_review")
            await pilot.press("ctrl+s")
            await until(lambda: len(app.model.debug.breakpoints) == 1, what="the first breakpoint")
            [first] = await observer.breakpoints()
            assert (first.artefact_type, first.produced_by_role, first.decision_kind) == \
                ("Recipe*", "Drafter", "grant_review")
            assert first.action.value == "hold" and first.enabled

            # A bad condition is refused in the dialog; nothing is written.
            await pilot.press("B", "tab")
            await type_text(pilot, "colour=red")
            await pilot.press("ctrl+s")
            assert isinstance(app.screen, BreakpointDialog)
            assert "unknown condition 'colour'" in str(app.screen.query_one("#bp-error", Label).render())
            await pilot.press("escape")
            assert not isinstance(app.screen, BreakpointDialog)

            # stop, on every decision kind create_claim from the second hit on.
            await pilot.press("B", "tab")
            await type_text(pilot, "kind=create_claim hit=>=2")
            await pilot.press("tab", "space", "ctrl+s")
            await until(lambda: len(app.model.debug.breakpoints) == 2, what="the second breakpoint")
            second = next(b for b in await observer.breakpoints() if b.id != first.id)
            assert second.artefact_type in (None, "*") and second.hit_condition == ">=2"
            assert second.action.value == "stop" and second.decision_kind == "create_claim"

            # e toggles the selected breakpoint; d deletes it after a confirmation.
            bps = app.query_one(BreakpointsList)
            bps.focus()
            await pilot.press("g")
            selected = bps.current_item
            assert selected is not None
            await pilot.pause(0.1)
            keys = footer_actions(app)
            assert keys["e"] == "toggle_breakpoint_enabled" and keys["d"] == "delete_breakpoint"

            async def enabled() -> bool | None:
                found = [b for b in await observer.breakpoints() if b.id == selected.id]
                return found[0].enabled if found else None

            await pilot.press("e")
            await until_async(lambda: _is(enabled(), False), "disabled in Redis")
            await until(lambda: not bps.current_item.enabled, what="disabled in the panel")  # type: ignore[union-attr]
            await pilot.press("e")
            await until_async(lambda: _is(enabled(), True), "enabled again in Redis")
            await until(lambda: bps.current_item.enabled, what="enabled in the panel")  # type: ignore[union-attr]
            await pilot.press("d", "escape")
            await pilot.pause(0.3)
            assert await enabled() is True  # cancelled: still there
            await pilot.press("d", "ctrl+s")
            await until_async(lambda: _is(enabled(), None), "deleted in Redis")
            await until(lambda: len(app.model.debug.breakpoints) == 1, what="deleted in the panel")

            # p pauses (full control); the footer then offers Resume on the same key, which leaves it.
            await pilot.press("p")
            await until_async(lambda: _full_control(observer, True), "full control")
            await until(lambda: app.model.debug.full_control, what="full control in the model")
            await pilot.pause(0.1)
            assert footer_actions(app)["p"] == "resume"
            await pilot.press("p")
            await until_async(lambda: _full_control(observer, False), "resumed")
            await until(lambda: not app.model.debug.full_control, what="resumed in the model")
            await pilot.pause(0.1)
            assert footer_actions(app)["p"] == "pause"
    finally:
        await engine.close()
    records = [(r.operator, r.action, r.subject) for r in await bb.audit.records() if r.action.startswith("debug_")]
    actions = [a for op, a, _ in records if op == "human:alice"]
    for action in ("debug_breakpoint_added", "debug_breakpoint_disabled", "debug_breakpoint_enabled",
                   "debug_breakpoint_removed", "debug_pause", "debug_resume"):
        assert action in actions, (action, records)
    assert actions.count("debug_breakpoint_added") == 2  # the refused one never reached Redis
    assert ("human:alice", "debug_breakpoint_removed", selected.id) in records


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def _full_control(client: DebugClient, expected: bool) -> bool:
    return (await client.mode()).full_control is expected


async def until_async(check: Callable[[], Any], what: str, within: float = 30.0) -> None:
    await poll(check, within, what)


async def test_s_steps_the_held_decision_selected_in_the_list_not_the_oldest(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    from holt_core.debug.breakpoints import BreakpointSpec

    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    await registered(engine, bb)
    observer = DebugClient(bb, "observer")
    await observer.add_breakpoint(BreakpointSpec(artefact_type="RecipeDraft"))
    await observer.release_lease()
    try:
        async with control_app(redis_url, instance) as app, app.run_test(size=(150, 45)) as pilot:
            await in_control(app)
            first = await goal(bb, "Sourdough bread")
            older = await wait_held(observer, lambda h: h.artefact is not None and h.artefact.type == "RecipeDraft")
            second = await goal(bb, "Rye bread")
            newer = await wait_held(observer, lambda h: h.artefact is not None and h.artefact.type == "RecipeDraft"
                                    and h.hold_id != older.hold_id)
            assert first.id != second.id and older.decision.artefact_id != newer.decision.artefact_id
            await pilot.press("7")
            held = app.query_one(HeldList)
            await until(lambda: {h.id for h in held.items} >= {older.hold_id, newer.hold_id}, what="both held")
            held.focus()
            await pilot.press("g", *(["j"] * [h.id for h in held.items].index(newer.hold_id)))
            assert held.current_item.id == newer.hold_id
            before = await claim_revs(bb)
            await pilot.press("s")
            await until(lambda: "stepped one decision" in action_log(app), what="the step in the action log")
            await wait_held(observer, lambda h: h.decision.artefact_id == newer.decision.artefact_id
                            and h.hold_id != newer.hold_id)
            diff = changed(before, await claim_revs(bb))
            # Exactly one claim written once: the selected (newer) workflow's draft claim, not the oldest's.
            [(claim_id, (old, new))] = diff.items()
            assert new == old + 1 and (await bb.get_claim(claim_id)).artefact_id == newer.decision.artefact_id
            still = [h for h in await observer.held() if h.release is None]
            assert any(h.hold_id == older.hold_id for h in still)  # the oldest is untouched
    finally:
        await engine.close()
    records = [(r.operator, r.action, r.subject) for r in await bb.audit.records()]
    assert any(op == "human:alice" and action == "debug_step" for op, action, _ in records)
