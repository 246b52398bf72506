"""Run to this workflow's Terminal (issue 13): under full control, ``holt debug continue HOLD --to-terminal``
carries workflow A on, decision after decision, until its Terminal artefact exists, while workflow B stays held
throughout. The mark is the operator's audited act with their proof; the orchestrator removes it once the
Terminal exists. Real Redis, the orchestrator and the recipe's agents, the installed CLI."""

from __future__ import annotations

import json
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.debug.client import DebugClient
from holt_core.debug.runs import RunMark
from holt_core.models import StructuralType
from holt_tui.widgets.views import HeldList
from tests.clirun import holt
from tests.debughelp import goal, poll, recipe_engine, wait_held
from tests.tui.test_control_pilot import action_log, control_app, in_control
from tests.tui.test_live_attach import registered, until


async def test_one_workflow_runs_to_its_terminal_while_the_other_stays_held(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard, cli_env: dict[str, str]
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    client = DebugClient(bb, "alice")
    try:
        await client.pause()
        first = await goal(bb, "Rye bread")
        other = await goal(bb, "Sourdough bread")
        named = await wait_held(client, lambda h: h.subject == first.id)
        kept = await wait_held(client, lambda h: h.subject == other.id)
        await client.release_lease()

        code, out, err = await holt(cli_env, "debug", "continue", named.hold_id, "--to-terminal", "--name", instance,
                                    "--as", "alice", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["action"] == "run_to_terminal" and [d["subject"] for d in report["decisions"]] == [first.id]
        assert report["mode"]["full_control"] is True

        async def a_finished_b_untouched() -> bool:
            # Checked on every poll: B never gets a claim and its decision stays held, unreleased.
            assert await bb.claim_id_for_artefact(other.id) is None
            assert [h.hold_id for h in await client.held() if h.subject == other.id and h.release is None] \
                == [kept.hold_id]
            arts = (await bb.list_artefacts()).artefacts
            return any(a.structural_type == StructuralType.TERMINAL for a in arts)

        await poll(a_finished_b_untouched, 90, "workflow A's Terminal")
        arts = {a.id: a for a in (await bb.list_artefacts()).artefacts}
        terminal = next(a for a in arts.values() if a.structural_type == StructuralType.TERMINAL)
        assert terminal.type == "FormattedRecipe"
        # Every artefact made on the way derives from A's goal; B has only its goal.
        assert all(a.id == other.id or a.id == first.id or a.source_artefacts for a in arts.values())

        async def mark_removed() -> bool:
            return not await client.runs()

        await poll(mark_removed, 30, "the orchestrator to end the run at the Terminal")
        assert (await client.mode()).full_control
        assert [h.hold_id for h in await client.held() if h.subject == other.id] == [kept.hold_id]
        assert await bb.claim_id_for_artefact(other.id) is None
    finally:
        await engine.close()
    records = [(r.operator, r.action, r.subject) for r in await bb.audit.records()]
    assert ("human:alice", "debug_run_to_terminal", first.id) in records
    assert ("system:orchestrator", "debug_run_to_terminal_reached", first.id) in records

    code, _, err = await holt(cli_env, "debug", "continue", "--to-terminal", "--name", instance, "--as", "alice")
    assert code != 0 and "needs the held decision" in err and "Traceback" not in err


async def test_a_mark_without_the_operators_proof_does_not_count(bb: Blackboard) -> None:
    mark = RunMark(root="0" * 8, by="alice", since_ms=1, hold_id="h", proof="nonce")
    await bb.redis.set(bb.keys.debug_run(mark.root), mark.to_json())
    await bb.redis.sadd(bb.keys.debug_runs, mark.root)
    assert await DebugClient(bb, "alice").runs() == []


async def test_u_in_the_debug_tab_runs_the_selected_workflow_to_its_terminal(
    tmp_path: Path, redis_url: str, instance: str, bb: Blackboard
) -> None:
    engine = recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    await registered(engine, bb)
    observer = DebugClient(bb, "observer")
    await observer.pause()
    await observer.release_lease()
    try:
        first = await goal(bb, "Rye bread")
        other = await goal(bb, "Sourdough bread")
        named = await wait_held(observer, lambda h: h.subject == first.id)
        kept = await wait_held(observer, lambda h: h.subject == other.id)
        async with control_app(redis_url, instance) as app, app.run_test(size=(150, 45)) as pilot:
            await in_control(app)
            await pilot.press("7")
            held = app.query_one(HeldList)
            await until(lambda: {h.id for h in held.items} >= {named.hold_id, kept.hold_id}, what="both held")
            held.focus()
            await pilot.press("g", *(["j"] * [h.id for h in held.items].index(named.hold_id)))
            await pilot.press("u")
            await until(lambda: "runs on to its Terminal" in action_log(app), what="the act in the action log")

            async def a_finished_b_untouched() -> bool:
                assert await bb.claim_id_for_artefact(other.id) is None
                return any(a.structural_type == StructuralType.TERMINAL
                           for a in (await bb.list_artefacts()).artefacts)

            await poll(a_finished_b_untouched, 90, "workflow A's Terminal")
            assert [h.hold_id for h in await observer.held() if h.subject == other.id] == [kept.hold_id]
    finally:
        await engine.close()
    records = [(r.operator, r.action, r.subject) for r in await bb.audit.records()]
    assert ("human:alice", "debug_run_to_terminal", first.id) in records
