"""Never silent, small terminals, the held-decision list, search and getting data out (fed apps, no Redis).

Every key that does nothing says why; the footer offers only what applies; s/c/K act on the held decision
selected in the list; / searches payloads too, n/N move between matches; ids in the Inspector are links;
y copies, w saves, :export writes DOT and Mermaid; q says that the instance keeps running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import TabbedContent, TextArea

from holt_tui.app import HoltTui
from holt_tui.config import TuiConfig
from holt_tui.display import link_of
from holt_tui.screens.dialogs import ActionDialog
from holt_tui.sources import ActionResult, NullInboxSource, Sources
from holt_tui.widgets.views import ArtefactGraph, BreakpointsList, HeldList, InboxList, InspectorLines
from tests.tui.apps import ControlCapableDebug, control_sources, fed_app
from tests.tui.fixtures import DRAFT1, DRAFT2, GOAL, live_workflow, two_held, uid, with_hitl_and_debug

CONTROL_ACTIONS = {"step", "continue_decision", "skip", "pause", "resume", "breakpoint", "add_breakpoint",
                   "toggle_breakpoint_enabled", "delete_breakpoint", "inject", "terminate", "answer", "reject"}


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.25)


def said(app: HoltTui) -> list[str]:
    return [n.message for n in app._notifications]


def footer_actions(app: HoltTui) -> set[str]:
    return {b.binding.action.split("(")[0] for b in app.screen.active_bindings.values() if b.binding.show}


class RecordingDebug(ControlCapableDebug):
    """Says yes to everything and records which decision each command named."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def step(self, decision_id: str) -> ActionResult:
        self.calls.append(("step", decision_id))
        return ActionResult(True, "stepped")

    async def continue_(self, decision_id: str) -> ActionResult:
        self.calls.append(("continue", decision_id))
        return ActionResult(True, "continued")

    async def skip(self, decision_id: str) -> ActionResult:
        self.calls.append(("skip", decision_id))
        return ActionResult(True, "skipped")

    async def terminate(self, claim_id: str, reason: str) -> ActionResult:
        self.calls.append(("terminate", reason))
        return ActionResult(False, "refused by the test: the lease is held by bob, who is stepping this claim "
                                   "right now and asked everyone else to wait")


# ------------------------------------------------------------------------------------------------ never silent


async def test_read_only_hides_control_keys_and_every_control_key_says_why() -> None:
    app = fed_app(with_hitl_and_debug(), read_only=True, sources=control_sources())
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        assert not footer_actions(app) & CONTROL_ACTIONS
        assert {"filter", "help", "quit"} <= footer_actions(app)
        for key in ("s", "c", "K", "p", "b", "i", "t", "a", "r"):
            app._notifications.clear()
            await pilot.press(key)
            messages = said(app)
            assert len(messages) == 1 and "read-only session" in messages[0], (key, messages)
        assert app.screen is app._main  # no dialog opened


async def test_replay_footer_has_no_control_and_says_why() -> None:
    app = fed_app(with_hitl_and_debug(), replay=True, sources=control_sources())
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        await pilot.press("6")
        assert not footer_actions(app) & CONTROL_ACTIONS
        await pilot.press("a")
        assert any("replay is read-only" in m for m in said(app))


async def test_nothing_held_and_nothing_selected_are_said() -> None:
    app = fed_app(live_workflow(), sources=control_sources())
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        assert "step" not in footer_actions(app)
        await pilot.press("s")
        assert any("nothing held" in m for m in said(app))
        await pilot.press("n")
        assert any("no search" in m for m in said(app))


async def test_empty_reason_and_a_refusal_keep_the_dialog_and_its_input() -> None:
    debug = RecordingDebug()
    app = fed_app(with_hitl_and_debug(), sources=Sources(NullInboxSource(), debug))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("6")
        app.query_one(InboxList).focus()
        await pilot.press("j", "r")  # the approval request
        dialog = app.screen
        assert isinstance(dialog, ActionDialog)
        await pilot.press("ctrl+s")
        assert app.screen is dialog and "a reason is required" in dialog.error_text
        await pilot.press("t", "o", "o", "space", "v", "a", "g", "u", "e", "ctrl+s")
        await pilot.pause(0.2)
        # The inbox source refuses (no plane): the dialog stays, with the text as typed and the refusal in it.
        assert app.screen is dialog and "refused: not available" in dialog.error_text
        assert dialog.query_one(TextArea).text == "too vague"
        await pilot.press("escape")
        # A long refusal wraps inside the dialog instead of being cut.
        app.query_one(ArtefactGraph).focus()
        await pilot.press("1", "g", "j", "j", "j", "t")  # draft v2 has an open claim
        dialog = app.screen
        assert isinstance(dialog, ActionDialog)
        await pilot.press("w", "ctrl+s")
        await pilot.pause(0.2)
        error = dialog.query_one("#dialog-error")
        assert "asked everyone else to wait" in dialog.error_text and error.size.height >= 2
        assert debug.calls == [("terminate", "w")]


async def test_tab_keys_work_from_any_focus_but_type_in_text_fields() -> None:
    app = fed_app(with_hitl_and_debug(), sources=control_sources())
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        await pilot.press("7")
        app.query_one(BreakpointsList).focus()
        await pilot.press("3")
        assert app.query_one(TabbedContent).active == "agents"
        await pilot.press("4")
        assert app.query_one(TabbedContent).active == "events"
        await pilot.press("1", "g", "j", "j", "j", "i", "2", "5")  # a dialog's text field takes the digits
        dialog = app.screen
        assert isinstance(dialog, ActionDialog) and dialog.query_one(TextArea).text == "25"
        assert app.query_one(TabbedContent).active == "inspector"


async def test_q_says_detached_and_how_to_stop() -> None:
    app = fed_app(live_workflow())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("q")
    # HoltTui.run prints it after leaving the screen (the tmux test sees it in the terminal).
    assert app.exit_note == ("holt-tui: detached from recipe; the instance keeps running "
                       "(holt down --name recipe stops it, holt-tui attach recipe comes back).")


async def test_small_terminal_keeps_counts_rows_and_the_main_keys() -> None:
    app = fed_app(two_held(), sources=control_sources())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        header = str(app.query_one("#header").render())
        assert header.startswith("recipe │ ● live │ ⏸ 2 held │ ✉ 2 waiting")
        graph = app.query_one(ArtefactGraph)
        assert graph.scrollable_content_region.height >= 10
        shown = [key for key, b in app.screen.active_bindings.items() if b.binding.show]
        assert shown[:5] == ["s", "c", "K", "a", "slash"]


# ------------------------------------------------------------------------------------------------ held list


@pytest.mark.parametrize(("key", "command"), [("s", "step"), ("c", "continue"), ("K", "skip")])
async def test_s_c_K_act_on_the_selected_held_decision(key: str, command: str) -> None:
    debug = RecordingDebug()
    app = fed_app(two_held(), sources=Sources(NullInboxSource(), debug))
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        await pilot.press("7")
        held = app.query_one(HeldList)
        assert [h.id for h in held.items] == ["hold-1", "hold-2"]
        rows = [held.item_text(h, False).plain for h in held.items]
        assert "grant_exclusive → Formatter" in rows[0] and "bids Formatter=exclusive Reviewer=review" in rows[0]
        assert "wf Sourdough bread (00000001)" in rows[1] and "grant_review → Reviewer" in rows[1]
        held.focus()
        await pilot.press("j", key)
        if key == "K":
            await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert debug.calls == [(command, "hold-2")]


# ------------------------------------------------------------------------------------------------ search


async def test_search_matches_payloads_highlights_and_n_N_move() -> None:
    app = fed_app(live_workflow())
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        graph = app.query_one(ArtefactGraph)
        await pilot.press("slash", *"flour", "enter")
        await settle(pilot)
        matches = [row[1] for row in graph.items if row[0] == "a"]
        assert matches == [DRAFT1.id, DRAFT2.id, app.model.artefacts[uid(7)].id]
        assert app.selected_artefact == DRAFT1.id
        row = graph.item_text(graph.items[graph.cursor], True)
        assert "⌕" in row.plain and any(span.style == "bold black on yellow" for span in row.spans)
        await pilot.press("n")
        assert app.selected_artefact == DRAFT2.id
        await pilot.press("N", "N")
        assert app.selected_artefact == uid(7)  # wrapped around
        assert any("wrapped" in m for m in said(app))
        await pilot.press("slash", "ctrl+u", *"rye", "enter")
        await settle(pilot)
        assert any('no match for "/rye"' in m for m in said(app))


async def test_inspector_ids_are_links() -> None:
    app = fed_app(live_workflow())
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        await pilot.press("g", "j", "j", "j")  # draft v2
        assert app.selected_artefact == DRAFT2.id
        inspector = app.query_one(InspectorLines)
        inspector.focus()
        links = [i for i, line in enumerate(inspector.items) if link_of(line) == DRAFT1.id]
        assert links
        await pilot.press(*(["j"] * links[0]), "enter")
        await settle(pilot)
        assert app.selected_artefact == DRAFT1.id


# ------------------------------------------------------------------------------------------------ data out


async def test_copy_save_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = fed_app(live_workflow())
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot)
        await pilot.press("g", "j", "j", "j", "y")
        assert app.clipboard == DRAFT2.id
        await pilot.press("Y")
        assert app.clipboard == DRAFT2.payload
        await pilot.press("w")
        dialog = app.screen
        assert isinstance(dialog, ActionDialog)
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert (tmp_path / f"RecipeDraft-v2-{DRAFT2.id[:8]}.txt").read_text() == DRAFT2.payload
        await pilot.press("w", "ctrl+s")
        await pilot.pause(0.2)
        assert "exists" in app.screen.error_text  # type: ignore[attr-defined]
        await pilot.press("escape", "colon", *"export dot g.dot", "enter")
        await pilot.press("colon", *"export mermaid g.mmd", "enter")
        await settle(pilot)
    dot = (tmp_path / "g.dot").read_text()
    assert f'"{GOAL.id}" -> "{DRAFT1.id}";' in dot and f'"{DRAFT1.id}" -> "{DRAFT2.id}";' in dot
    mermaid = (tmp_path / "g.mmd").read_text()
    assert mermaid.startswith("flowchart TD") and "a0 --> a1" in mermaid and "RecipeDraft v2" in mermaid


def test_config_is_frozen() -> None:
    assert TuiConfig.frozen().clock_ms() == TuiConfig.frozen().clock_ms()


async def test_pager_that_cannot_open_says_why() -> None:
    app = fed_app(live_workflow())
    async with app.run_test(size=(140, 36)) as pilot:  # headless: the terminal cannot be handed to a pager
        await settle(pilot)
        await pilot.press("g", "j", "o")
        assert any(m.startswith("pager: cannot open") and "w saves the payload" in m for m in said(app))
