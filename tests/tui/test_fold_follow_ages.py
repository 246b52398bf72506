"""Workflow rows fold and unfold, follow mode shows a new workflow, and ages tick while events keep coming
(issue 13, "one truth")."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from holt_core.models import Artefact, StructuralType
from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.feed import ArtefactSeen, FeedItem, InstanceSeen
from holt_tui.widgets.views import ArtefactGraph, HeldList, TextLines
from tests.tui.apps import fed_app
from tests.tui.fixtures import FROZEN_NOW_MS, instance_info, live_workflow, two_held, uid
from tests.tui.screen import screen_text


def _artefact_rows(graph: ArtefactGraph) -> int:
    return sum(1 for r in graph.items if r[0] == "a")


async def test_enter_and_z_fold_and_unfold_a_workflow() -> None:
    app = fed_app(live_workflow())
    async with app.run_test(size=(140, 36)) as pilot:
        await pilot.pause(0.3)
        graph = app.query_one(ArtefactGraph)
        total = _artefact_rows(graph)
        assert total == len(app.model.artefacts) > 1
        await pilot.press("g")
        assert graph.current_item[0] == "w"
        root = graph.current_item[1]
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert _artefact_rows(graph) == 0 and root in app.model.collapsed
        assert "▶ [done] workflow" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert _artefact_rows(graph) == total and "▼ [" in screen_text(app)
        # z on an artefact row folds its workflow and puts the cursor on the header.
        await pilot.press("G", "z")
        assert _artefact_rows(graph) == 0 and graph.current_key == "w:" + root
        await pilot.press("colon", *"unfold", "enter")
        await pilot.pause(0.1)
        assert _artefact_rows(graph) == total


def _goal(n: int, created_ms: int) -> Artefact:
    return Artefact(id=uid(n), logical_id=uid(n + 1000), version=1, structural_type=StructuralType.STANDARD,
                    type="GoalDefined", payload="Rye bread", source_artefacts=[], produced_by_role="user",
                    created_at_ms=created_ms)


async def test_follow_shows_a_new_workflow_and_unfolds_it() -> None:
    app = fed_app(live_workflow())
    async with app.run_test(size=(140, 24)) as pilot:
        await pilot.pause(0.3)
        graph = app.query_one(ArtefactGraph)
        await pilot.press("g")
        # Not following: the cursor stays and one line says how to see the new workflow.
        app.push(ArtefactSeen(_goal(500, FROZEN_NOW_MS - 1000)))
        await pilot.pause(0.3)
        assert graph.current_item[0] == "w" and graph.current_item[1] != uid(500)
        assert any("new workflow GoalDefined" in n.message for n in app._notifications)
        # Following: a second new workflow (its goal, then a draft of it) is selected and on screen, even folded.
        await pilot.press("f")
        assert app.following
        app.model.set_collapsed(uid(500), True)
        second = _goal(600, FROZEN_NOW_MS - 500)
        app.push(ArtefactSeen(second))
        await pilot.pause(0.3)
        assert graph.current_key == second.id
        draft = Artefact(id=uid(601), logical_id=uid(1601), version=1, structural_type=StructuralType.STANDARD,
                         type="RecipeDraft", payload="rye", source_artefacts=[second.id], produced_by_role="Drafter",
                         created_at_ms=FROZEN_NOW_MS - 400)
        app.model.set_collapsed(second.id, True)
        app.push(ArtefactSeen(draft))
        await pilot.pause(0.3)
        assert graph.current_key == draft.id and second.id not in app.model.collapsed
        top = int(graph.scroll_y)
        assert top <= graph.cursor < top + graph.size.height  # in view, not below the fold


async def test_ages_tick_while_the_feed_keeps_coming() -> None:
    now = [FROZEN_NOW_MS]
    config = dataclasses.replace(TuiConfig.frozen(), clock_ms=lambda: now[0])
    items = two_held()

    async def start(sink: Callable[[FeedItem], None]) -> None:
        for item in items:
            sink(item)

    app = HoltTui("recipe", start, config=config)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("7")
        await pilot.pause(0.2)
        held = app.query_one(HeldList)
        before = screen_text(app)
        detail_before = [t.plain for t in app.query_one("#held-detail", TextLines).items]
        for _ in range(4):  # something arrives on every drain, as on a busy live instance
            now[0] += 30_000
            app.push(InstanceSeen(instance_info()))
            await pilot.pause(0.15)
        after = screen_text(app)
        detail_after = [t.plain for t in app.query_one("#held-detail", TextLines).items]
        assert held.items and before != after
        held_for = [line for line in detail_after if line.startswith("held for")]
        assert held_for and held_for != [line for line in detail_before if line.startswith("held for")]
