"""Snapshots of every screen and state, from fixed feed items on a frozen clock (see fixtures.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from holt_tui.app import HoltTui
from holt_tui.recording import load_recording
from holt_tui.widgets.views import BreakpointsList, HeldList
from tests.tui.apps import control_sources, fed_app
from tests.tui.fixtures import (
    empty_instance,
    live_workflow,
    resynced,
    two_held,
    with_hitl_and_debug,
    write_recording,
)

WIDE = (140, 36)


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.25)  # two drain ticks
    await pilot.wait_for_scheduled_animations()


def test_empty_instance(snap_compare: Any) -> None:
    assert snap_compare(fed_app(empty_instance()), terminal_size=WIDE, run_before=settle)


def test_live_workflow(snap_compare: Any) -> None:
    assert snap_compare(fed_app(live_workflow()), terminal_size=WIDE, run_before=settle)


def test_inspector_with_json_diff(snap_compare: Any) -> None:
    async def select_v2(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("j", "j", "j")  # workflow header, goal, draft v1, draft v2
        await settle(pilot)

    assert snap_compare(fed_app(live_workflow()), terminal_size=(140, 60), run_before=select_v2)


def test_neighbourhood(snap_compare: Any) -> None:
    assert snap_compare(fed_app(live_workflow()), terminal_size=(140, 50), press=["_", "j", "j", "j", "2", "_"],
                        run_before=settle)


def test_help(snap_compare: Any) -> None:
    assert snap_compare(fed_app(live_workflow()), terminal_size=(120, 50), press=["_", "question_mark", "_"],
                        run_before=settle)


def test_read_only_mode(snap_compare: Any) -> None:
    assert snap_compare(fed_app(with_hitl_and_debug(), read_only=True), terminal_size=WIDE, press=["_", "6", "_"],
                        run_before=settle)


def test_resync_notice(snap_compare: Any) -> None:
    assert snap_compare(fed_app(resynced()), terminal_size=WIDE, run_before=settle)


@pytest.mark.parametrize("tab", ["1", "2", "3", "4", "5", "6", "7"])
def test_every_tab_at_80x24(snap_compare: Any, tab: str) -> None:
    # Header keeps instance, connection, held and waiting; the list keeps 10 rows; the main keys come first.
    app = fed_app(two_held(), sources=control_sources())
    assert snap_compare(app, terminal_size=(80, 24), press=["_", "j", "j", "j", tab, "_"], run_before=settle)


def test_held_decision_list(snap_compare: Any) -> None:
    async def select_second(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("7")
        pilot.app.query_one(HeldList).focus()
        await pilot.press("j")
        await settle(pilot)

    app = fed_app(two_held(), sources=control_sources())
    assert snap_compare(app, terminal_size=(160, 40), run_before=select_second)


def test_search_with_highlights(snap_compare: Any) -> None:
    async def search(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("slash", *"flour", "enter", "n")
        await settle(pilot)
        pilot.app.clear_notifications()  # their order with the redraw is not deterministic
        await settle(pilot)

    assert snap_compare(fed_app(live_workflow()), terminal_size=(140, 40), run_before=search)


def test_inbox_placeholder(snap_compare: Any) -> None:
    assert snap_compare(fed_app(live_workflow()), terminal_size=WIDE, press=["_", "6", "_"], run_before=settle)


def test_debugger_placeholder(snap_compare: Any) -> None:
    assert snap_compare(fed_app(live_workflow()), terminal_size=WIDE, press=["_", "7", "_"], run_before=settle)


def test_inbox_with_question_and_approval(snap_compare: Any) -> None:
    assert snap_compare(fed_app(with_hitl_and_debug()), terminal_size=WIDE, press=["_", "6", "_"],
                        run_before=settle)


def test_held_decision_and_breakpoints(snap_compare: Any) -> None:
    assert snap_compare(fed_app(with_hitl_and_debug()), terminal_size=WIDE, press=["_", "7", "_"],
                        run_before=settle)


def test_breakpoints_panel_keys(snap_compare: Any) -> None:
    # A breakpoint selected in the Debug tab: the footer offers B (add), e (enable/disable), d (delete).
    async def select_breakpoint(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("7")
        pilot.app.query_one(BreakpointsList).focus()
        await pilot.press("j")
        await settle(pilot)

    app = fed_app(with_hitl_and_debug(), sources=control_sources())
    assert snap_compare(app, terminal_size=WIDE, run_before=select_breakpoint)


def test_replay_of_a_recording(snap_compare: Any, tmp_path: Path) -> None:
    recording = load_recording(write_recording(tmp_path / "rec.jsonl", live_workflow()))
    from holt_tui.recording import replay

    async def start(sink: Any) -> None:
        await replay(recording, sink, speed=0)

    from holt_tui.config import TuiConfig

    app = HoltTui(recording.instance, start, config=TuiConfig.frozen(), replay=True)
    assert snap_compare(app, terminal_size=WIDE, press=["_", "4", "_"], run_before=settle)


def test_history_mode(snap_compare: Any) -> None:
    # h, then three changes back: the header says HISTORY with the moment, the notice names the change, the
    # footer offers the history keys and no control key; the question and the hold are not there yet.
    async def back_three(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("h", "left_square_bracket", "left_square_bracket", "left_square_bracket")
        await settle(pilot)
        pilot.app.clear_notifications()  # their order with the redraw is not deterministic
        await settle(pilot)

    app = fed_app(with_hitl_and_debug(), sources=control_sources())
    assert snap_compare(app, terminal_size=(140, 36), run_before=back_three)
