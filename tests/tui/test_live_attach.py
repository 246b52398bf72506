"""Pilot tests against the real Redis, with an orchestrator and real agent processes (tests/engine.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from holt_core.blackboard import Blackboard
from holt_core.instances import InstanceRecord, register
from holt_core.models import Artefact, StructuralType, new_id
from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.feed import FeedItem
from holt_tui.model import LiveModel
from holt_tui.reader import Reader
from holt_tui.recording import Recorder, load_recording
from holt_tui.sources import null_sources
from holt_tui.widgets.views import ArtefactGraph, TextLines
from tests.engine import Engine, poll
from tests.test_engine_e2e import recipe_engine
from tests.tui.screen import screen_text


def live_app(redis_url: str, instance: str, *, recorder: Recorder | None = None) -> HoltTui:
    config = TuiConfig.frozen()
    sources = null_sources()

    async def start(sink: Callable[[FeedItem], None]) -> None:
        await Reader(redis_url, instance, sink, sources, config).run()

    return HoltTui(instance, start, config=config, sources=sources, recorder=recorder)


until = poll  # the tests' one poller, under the name these UI tests use


async def registered(engine: Engine, bb: Blackboard) -> None:
    await register(bb.redis, InstanceRecord(name=engine.instance, run_id="r", workspace_path=str(engine.workspace),
                                            started_at="2026-01-01T00:00:00Z"))


def terminal_seen(app: HoltTui) -> bool:
    return any(a.structural_type is StructuralType.TERMINAL for a in app.model.artefacts.values())


async def test_attach_follows_a_live_workflow_without_moving_the_cursor(
        tmp_path: Path, redis_url: str, instance: str, bb: Blackboard) -> None:
    engine = await recipe_engine(tmp_path, redis_url, instance)
    await engine.start()
    await registered(engine, bb)
    recording = tmp_path / "session.jsonl"
    config = TuiConfig.frozen()
    recorder = Recorder(recording, instance, now_ms=config.clock_ms, monotonic=time.monotonic)
    try:
        goal = await engine.forage("Sourdough bread")
        app = live_app(redis_url, instance, recorder=recorder)
        async with app.run_test(size=(140, 40)) as pilot:
            graph = app.query_one(ArtefactGraph)
            await until(lambda: goal.id in app.model.artefacts and graph.items != [], what="the goal on screen")
            assert app.model.connection in ("live", "scanning")
            assert graph.select_key(goal.id)
            screen_row = graph.cursor - int(graph.scroll_y)
            await until(lambda: terminal_seen(app), 60, "the workflow to finish")
            await pilot.pause(0.3)
            # New artefacts arrived below and around the goal: the cursor stayed on it, at the same place.
            assert graph.current_key == goal.id
            assert graph.cursor - int(graph.scroll_y) == screen_row
            assert app.new_count >= 5
            assert f"{app.new_count} new" in screen_text(app)
            # The agents panel knows the roles from holt.yml and who bid.
            await pilot.press("3")
            await pilot.pause(0.2)
            agents = screen_text(app)
            for role in ("Drafter", "Reviewer", "Formatter", "Nutritionist"):
                assert role in agents

            # Follow: the cursor jumps to the newest artefact and the counter resets.
            await pilot.press("f")
            await pilot.pause(0.1)
            assert app.following and app.new_count == 0
            assert graph.current_key == app.model.newest_artefact()
            # Moving by hand ends follow mode.
            await pilot.press("k")
            assert not app.following

            # Filter with the shared syntax: only Review rows (and their workflow header) remain.
            await pilot.press("slash")
            await pilot.press(*"type:Review")
            await pilot.press("enter")
            await pilot.pause(0.1)
            shown = [r for r in graph.items if r[0] == "a"]
            assert shown and all(app.model.artefacts[r[1]].type == "Review" for r in shown)
            assert len(shown) == 2
            await pilot.press("colon", *"clear-filter", "enter")
            await pilot.pause(0.1)
            assert len([r for r in graph.items if r[0] == "a"]) == len(app.model.artefacts)

            # Inspector: the second draft shows its claim, bids and the JSON diff against v1.
            draft2 = next(a for a in app.model.artefacts.values() if a.type == "RecipeDraft" and a.version == 2)
            await pilot.press("1", "colon", *f"goto {draft2.id[:8]}", "enter")
            await pilot.pause(0.2)
            assert graph.current_key == draft2.id
            inspector = "\n".join(t.plain for t in app.query_one("#inspector-view", TextLines).items)
            assert "diff against v1" in inspector
            assert "+" in inspector and "500 g flour" in inspector
            assert "status        complete" in inspector
            assert "Formatter" in inspector and "exclusive" in inspector
            live_ids = set(app.model.artefacts)
    finally:
        await engine.close()
    # The recording replays to the same artefacts.
    rec = load_recording(recording)
    model = LiveModel(instance)
    model.apply_all(item for _, item in rec.items)
    assert set(model.artefacts) == live_ids
    assert not model.loading


async def test_reconnect_rescans_and_shows_the_resynced_notice(redis_url: str, instance: str, bb: Blackboard) -> None:
    first = Artefact(id=new_id(), logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                     type="GoalDefined", payload="one", source_artefacts=[], produced_by_role="user")
    await bb.create_artefact(first)
    app = live_app(redis_url, instance)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(lambda: app.model.connection == "live" and first.id in app.model.artefacts, what="attach")
        assert "resynced" not in screen_text(app)
        # Cut the TUI's connections, and write while it is away: pub/sub cannot deliver that event.
        clients = await bb.redis.client_list()
        for c in clients:
            if c.get("name") == "holt-tui":
                await bb.redis.client_kill_filter(_id=c["id"])
        gap = first.model_copy(update={"id": new_id(), "logical_id": new_id(), "payload": "two", "created_at_ms": 0})
        await bb.create_artefact(gap)
        await until(lambda: gap.id in app.model.artefacts, 20, "the rescan to find the artefact written in the gap")
        await until(lambda: app.model.connection == "live", what="live again")
        await pilot.pause(0.2)
        assert app.model.resync_notice
        assert "resynced" in screen_text(app)
        await pilot.press("x")
        await pilot.pause(0.1)
        assert "resynced" not in screen_text(app)
