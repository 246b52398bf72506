"""One truth (issue 13): the TUI's badges, header counts and inspector say what ``holt explain`` says, live and
after a fresh attach. The recipe workflow runs to its Terminal with the real orchestrator and agents; its
Formatter asks a person a question first. At three moments (a decision held, a question waiting for its answer,
after the Terminal) every artefact's badge and the header's open-claims count are compared with explain's verdict
on every artefact and claim, and the inspector's state and first reason with explain's state and summary."""

from __future__ import annotations

from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.claim_stage import STAGE_TEXT, Stage
from holt_core.debug.breakpoints import BreakpointSpec
from holt_core.debug.client import DebugClient
from holt_core.debug.explain import explain
from holt_core.models import StructuralType
from holt_tui.app import HoltTui
from holt_tui.display import claim_badge
from holt_tui.widgets.views import TextLines
from tests.debughelp import goal, recipe_engine, wait_held
from tests.engine import poll, wait_for_artefact
from tests.hitl_support import AGENTS, wait_request
from tests.tui.screen import screen_text
from tests.tui.test_control_pilot import control_app, goto, in_control
from tests.tui.test_live_attach import live_app, registered

_MARK = {Stage.HELD: "⏸ held", Stage.WAITING: "✉ waiting", Stage.DORMANT: "[dormant]", Stage.DONE: "[done]",
         Stage.TERMINATED: "[term]"}


def _asking_formatter(text: str) -> str:
    # The Formatter asks a person first (tests/hitl_agents.py "asker"), and ends the workflow once answered.
    return text.replace('"agents/formatter.py"]', '"agents/ask.py", "asker", "human"]')


async def _verdicts(bb: Blackboard) -> tuple[dict[str, tuple[str, str]], int]:
    """explain's (state, summary) for every artefact, and how many claims it counts as open."""
    by_artefact = {a.id: (e.state, e.summary) for a in (await bb.list_artefacts()).artefacts
                   for e in [await explain(bb, a.id)]}
    active = [e for e in [await explain(bb, c) async for c in bb.scan_claim_ids()] if not Stage(e.state).closed]
    return by_artefact, len(active)


def _inspector(app: HoltTui) -> list[str]:
    return [t.plain for t in app.query_one("#inspector-view", TextLines).items]


async def _agree(app: HoltTui, bb: Blackboard, *, inspect: str | None = None) -> None:
    """Poll (the UI applies the feed ten times a second) until the TUI says what explain says; fail naming how."""
    problems: list[str] = []

    async def check() -> bool:
        verdicts, active = await _verdicts(bb)
        problems[:] = []
        for a_id, (state, _) in verdicts.items():
            if a_id not in app.model.artefacts:
                problems.append(f"{a_id[:8]} not in the TUI")
                continue
            mine = app.model.stage_of(a_id)
            badge = claim_badge(app.model, a_id).plain
            if mine.value != state or (Stage(state) in _MARK and _MARK[Stage(state)] not in badge):
                problems.append(f"{app.model.artefacts[a_id].type} {a_id[:8]}: TUI {mine.value} {badge!r}, "
                                f"explain {state}")
        if f" {active} open claims" not in screen_text(app):
            problems.append(f"header {screen_text(app).splitlines()[0]!r}, explain counts {active} open")
        if inspect is not None:
            state, summary = verdicts[inspect]
            lines = _inspector(app)
            if not any(line.startswith("state") and STAGE_TEXT[Stage(state)] in line for line in lines):
                problems.append(f"inspector state, explain says {state}")
            if not Stage(state).closed:
                reasons = [line.strip().removeprefix("• ") for line in lines if line.strip().startswith("•")]
                if not reasons or reasons[0] != summary:
                    problems.append(f"inspector first reason {reasons[:1]}, explain {summary!r}")
        return not problems

    try:
        await poll(check, 30, "the TUI to agree with holt explain")
    except AssertionError as err:
        raise AssertionError(f"{err}: {problems}") from None


async def test_badges_header_and_inspector_agree_with_explain_live_and_after_reattach(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance, extra_files={"agents/ask.py": AGENTS.read_text()},
                           transform=_asking_formatter)
    await engine.start()
    await registered(engine, bb)
    observer = DebugClient(bb, "observer")
    await observer.add_breakpoint(BreakpointSpec(artefact_type="RecipeDraft", hit_condition="==1"))
    await observer.release_lease()
    try:
        async with control_app(redis_url, instance) as app, app.run_test(size=(170, 50)) as pilot:
            await in_control(app)
            start = await goal(bb, "Sourdough bread")
            # 1. A decision held: the first draft's claim creation.
            held = await wait_held(observer, lambda h: h.artefact is not None and h.artefact.type == "RecipeDraft")
            draft1 = held.decision.artefact_id
            await goto(pilot, app, draft1)
            await _agree(app, bb, inspect=draft1)
            assert app.model.stage_of(draft1) is Stage.HELD
            await pilot.press("7", "c", "1")

            # 2. The Formatter's question waits for a person: "delivered" is not what the inspector says.
            question = await wait_request(bb, lambda r: r.kind.value == "question" and r.status.value == "open", 60)
            asked_on = (await bb.get_claim(question.claim_id)).artefact_id
            await goto(pilot, app, asked_on)
            await _agree(app, bb, inspect=asked_on)
            assert app.model.stage_of(asked_on) is Stage.WAITING
            assert not any("every granted agent has delivered" in line for line in _inspector(app))
            assert (await app.sources.inbox.answer(question.id, "PostgreSQL")).ok

            # 3. After the Terminal: the nutrition notes' claim is dormant, the first draft's claims closed.
            await wait_for_artefact(bb, lambda a: a.structural_type == StructuralType.TERMINAL, 60)
            notes = await wait_for_artefact(bb, lambda a: a.type == "NutritionNotes")
            await goto(pilot, app, notes.id)
            await _agree(app, bb, inspect=notes.id)
            assert app.model.stage_of(notes.id) is Stage.DORMANT and app.model.open_claims() == 0
            live = {a: claim_badge(app.model, a).plain for a in app.model.artefacts}
            assert start.id in live
        # A fresh attach reads the same blackboard and says the same, badge for badge.
        again = live_app(redis_url, instance)
        async with again.run_test(size=(170, 50)):
            await _agree(again, bb)
            assert {a: claim_badge(again.model, a).plain for a in again.model.artefacts} == live
    finally:
        await engine.close()
