"""Time travel in the app: h enters history mode, [ ] step through the changes, { } jump, h/esc leave;
every view (list, claim badges, inbox, debugger) shows the moment; no control key acts there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.display import claim_badge
from holt_tui.feed import ArtefactSeen
from holt_tui.recording import load_recording, replay
from holt_tui.timeline import parse_moment
from holt_tui.widgets.views import ArtefactGraph
from tests.tui.apps import control_sources, fed_app
from tests.tui.fixtures import DRAFT1, DRAFT2, NOTES, T0, art, uid, with_hitl_and_debug, write_recording
from tests.tui.screen import screen_text

HOLT_TUI = str(Path(sys.executable).parent / "holt-tui")
CONTROL_KEYS = ("s", "c", "K", "a", "r", "p", "b", "i", "t")


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.25)


def said(app: HoltTui) -> list[str]:
    return [n.message for n in app._notifications]


def shown_ids(app: HoltTui) -> set[str]:
    return {row[1] for row in app.query_one(ArtefactGraph).items if row[0] == "a"}


def footer_keys(app: HoltTui) -> set[str]:
    return {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show and b.enabled}


async def test_step_back_hides_later_artefacts_and_shows_earlier_claim_states() -> None:
    app = fed_app(with_hitl_and_debug(), sources=control_sources())
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert "left_square_bracket" not in footer_keys(app)
        await pilot.press("h")
        await settle(pilot)
        h = app.history
        assert h is not None and h.index == len(h.timeline)
        assert "HISTORY" in screen_text(app).splitlines()[0]
        assert {"left_square_bracket", "left_curly_bracket", "h"} <= footer_keys(app)  # at the last change: no ]
        assert not footer_keys(app) & set(CONTROL_KEYS)
        assert NOTES.id in shown_ids(app) and len(app.model.debug.held) == 1 and len(app.model.inbox.items) == 2
        # Back to the moment before NutritionNotes was created: gone from the list, inbox and holds empty then.
        notes_at = next(i for i, m in enumerate(h.timeline.moments, 1) if m.key == "a:" + NOTES.id)
        for _ in range(h.index - (notes_at - 1)):
            await pilot.press("left_square_bracket")
        await settle(pilot)
        assert h.index == notes_at - 1
        assert NOTES.id not in shown_ids(app) and DRAFT2.id in shown_ids(app)
        assert app.model.inbox.items == () and app.model.debug.held == ()
        assert f"(change {notes_at - 1}/{len(h.timeline)})" in screen_text(app).splitlines()[0]
        # RecipeDraft v1's claim was still open (in review) before its terminating review arrived.
        await pilot.press("left_curly_bracket")
        while DRAFT1.id not in app.model.artefacts or uid(102) not in app.model.claims:
            await pilot.press("right_square_bracket")
        await settle(pilot)
        assert claim_badge(app.model, DRAFT1.id).plain == " [review]"
        assert claim_badge(app.live_model, DRAFT1.id).plain == " [term]"
        assert app.query_one(ArtefactGraph).artefact_id == DRAFT1.id  # the change's artefact is selected
        # Forward brings it all back; } jumps to the last change.
        await pilot.press("right_curly_bracket")
        await settle(pilot)
        assert NOTES.id in shown_ids(app) and len(app.model.debug.held) == 1
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert "step forward: this is the last change seen (h or esc returns to live)" in said(app)


async def test_control_keys_refuse_in_history_mode_and_the_present_keeps_moving() -> None:
    items = with_hitl_and_debug()
    app = fed_app(items, sources=control_sources())
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("h", "left_square_bracket")
        await settle(pilot)
        app.clear_notifications()
        for key in CONTROL_KEYS:
            await pilot.press(key)
        await settle(pilot)
        refusals = [m for m in said(app) if "history mode shows the past" in m]
        assert len(refusals) == len(CONTROL_KEYS), said(app)
        # The live stream is still consumed: an artefact arriving now is in the present, not in the moment.
        late = art(50, "Late", "Drafter", "later", [4], at=400_000)
        app.push(ArtefactSeen(late))
        await settle(pilot)
        assert late.id in app.live_model.artefacts and late.id not in shown_ids(app)
        assert "the present moved on" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert app.history is None and late.id in shown_ids(app)
        assert "HISTORY" not in screen_text(app).splitlines()[0]
        # Outside history mode the stepping keys say why they do nothing.
        app.clear_notifications()
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert any("not in history mode" in m for m in said(app))
        # :at seeks: a change number, then a time of day (on the last change's day).
        app.run_command_line("at 3")
        await settle(pilot)
        assert app.history is not None and app.history.index == 3
        app.run_command_line("at 23:55:50")
        await settle(pilot)
        assert app.history.moment_ts == T0 + 50_000 and NOTES.id in shown_ids(app)
        app.run_command_line("at soon")
        await settle(pilot)
        assert any("give a change number" in m for m in said(app))


async def test_replay_at_opens_at_that_moment(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "session.jsonl", with_hitl_and_debug())
    recording = load_recording(path)

    async def start(sink: Any) -> None:
        await replay(recording, sink, speed=0)

    # --at 2025-12-31T23:55:50Z is T0 + 50 s: NutritionNotes has just been written, the question is not asked yet.
    at_ms = parse_moment("2025-12-31T23:55:50Z")
    assert at_ms == ("time", T0 + 50_000)

    app = HoltTui(recording.instance, start, config=TuiConfig.frozen(), replay=True, history_at=at_ms)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        h = app.history
        assert h is not None and h.moment_ts == T0 + 50_000
        assert NOTES.id in shown_ids(app) and app.model.inbox.items == () and len(app.live_model.inbox.items) == 2
        assert "HISTORY 2025-12-31 23:55:50" in screen_text(app).splitlines()[0]
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert NOTES.id not in shown_ids(app)


def test_replay_at_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "session.jsonl", with_hitl_and_debug())
    env = {**os.environ, "HOLT_DATA_DIR": str(tmp_path / "data")}
    for args, expected in ((["--at", "yesterday"], "give a change number"),
                           (["--at", "3", "--speed", "1"], "leave out --speed")):
        proc = subprocess.run([HOLT_TUI, "replay", str(path), *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=60)
        assert proc.returncode == 1 and expected in proc.stderr and "Traceback" not in proc.stderr


async def test_a_big_timeline_is_built_in_a_thread_while_the_feed_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("holt_tui.app.BIG_HISTORY", 1)  # the fixture's 6 artefacts count as big
    app = fed_app(with_hitl_and_debug(), sources=control_sources())
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("h")
        deadline = time.monotonic() + 20
        while app.history is None:
            assert time.monotonic() < deadline, said(app)
            await pilot.pause(0.05)
        assert any("building the timeline of 6 artefacts" in m for m in said(app))
        assert "HISTORY" in screen_text(app).splitlines()[0]
        late = art(51, "Late", "Drafter", "later", [4], at=400_000)
        app.push(ArtefactSeen(late))
        await settle(pilot)
        assert late.id in app.live_model.artefacts and late.id not in shown_ids(app)
