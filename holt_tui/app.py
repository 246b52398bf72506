"""``HoltTui``: the full-screen debugger. Widgets draw from the ``LiveModel``; the feed arrives in a deque.

The reader (or a replay) appends feed items to ``self.feed`` as they come; a timer drains the deque
5-10 times a second and applies the whole batch inside one ``batch_update()``, so a burst of thousands of
events costs one redraw, and keys stay responsive.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shlex
import subprocess
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static, TabbedContent, TabPane

from holt_core.artefact_record import ArtefactRecord
from holt_core.errors import HoltError
from holt_core.redis_wire import loaded_errors
from holt_tui.breakpoint_form import BreakpointForm
from holt_tui.commands import COMMANDS, ActionsProvider, Command, find_command
from holt_tui.config import TuiConfig
from holt_tui.display import (
    SEARCH_STYLE,
    PayloadCache,
    clock,
    held_lines,
    inspector_lines,
    neighbourhood_lines,
    s,
)
from holt_tui.export import workflow_dot, workflow_mermaid
from holt_tui.feed import ClaimSeen, FeedItem, ScanPage
from holt_tui.filtering import NO_FILTER, ListFilter
from holt_tui.messages import ActionDone, Explained, LinkFollowed, PromptCancelled, PromptSubmitted, RowSelected
from holt_tui.model import Change, LiveModel
from holt_tui.payload import pretty_payload
from holt_tui.recording import Recorder
from holt_tui.screens.help import HelpScreen
from holt_tui.sources import ActionResult, Breakpoint, HeldDecision, InboxItem, LeaseState, Sources, null_sources
from holt_tui.timeline import ClaimJournal, Timeline, build_timeline, parse_moment, seek
from holt_tui.widgets.footer import KeyFooter
from holt_tui.widgets.lines import LineList
from holt_tui.widgets.prompt import PromptBar
from holt_tui.widgets.views import (
    AgentsList,
    ArtefactGraph,
    AuditTail,
    BreakpointsList,
    EventLog,
    HeldList,
    InboxList,
    InspectorLines,
    TextLines,
)

PANES = ("inspector", "neighbourhood", "agents", "events", "audit", "inbox", "debugger")
PANE_LABELS = ("Inspector", "Graph", "Agents", "Events", "Audit", "Inbox", "Debugger")
# Control actions, the capability each needs from the debug source ("inbox" = the inbox source).
CONTROL: dict[str, str] = {
    "step": "step", "continue_decision": "continue", "skip": "skip", "pause": "pause", "resume": "resume",
    "run_to_terminal": "run_to_terminal", "breakpoint": "breakpoint", "add_breakpoint": "breakpoint",
    "toggle_breakpoint_enabled": "breakpoint",
    "delete_breakpoint": "breakpoint", "inject": "inject_review", "terminate": "terminate",
    "answer": "inbox", "reject": "inbox",
}
# History mode (time travel): step back / forward one change, jump to the first / last change.
HISTORY_KEYS = (("left_square_bracket", "back"), ("right_square_bracket", "forward"),
                ("left_curly_bracket", "start"), ("right_curly_bracket", "end"))
# Keys whose action may not apply now, and so have a ``refuse`` fallback binding.
REFUSABLE: tuple[tuple[str, str], ...] = (
    ("s", "step"), ("c", "continue_decision"), ("K", "skip"), ("u", "run_to_terminal"), ("a", "answer"),
    ("r", "reject"),
    ("n", "search_next"), ("N", "search_previous"), ("p", "pause"), ("b", "breakpoint"), ("B", "add_breakpoint"),
    ("e", "toggle_breakpoint_enabled"), ("d", "delete_breakpoint"), ("i", "inject"), ("t", "terminate"),
    ("y", "copy_id"), ("Y", "copy_payload"), ("o", "open_pager"), ("w", "save_payload"), ("x", "dismiss_notice"),
    *((key, f"history_{step}") for key, step in HISTORY_KEYS),
)
_ACTION_NAMES = {
    "step": "step", "continue_decision": "continue", "skip": "skip", "pause": "pause", "resume": "resume",
    "run_to_terminal": "run to Terminal", "breakpoint": "breakpoint", "add_breakpoint": "add breakpoint",
    "toggle_breakpoint_enabled": "enable/disable",
    "delete_breakpoint": "delete breakpoint", "inject": "inject review", "terminate": "terminate",
    "answer": "answer", "reject": "reject", "search_next": "next match", "search_previous": "previous match",
    "copy_id": "copy id", "copy_payload": "copy payload", "open_pager": "pager", "save_payload": "save",
    "dismiss_notice": "dismiss", "history_back": "step back", "history_forward": "step forward",
    "history_start": "first change", "history_end": "last change", "leave_history": "leave history",
}
FeedStarter = Callable[[Callable[[FeedItem], None]], Awaitable[None]]
_LOAD_PAINT_S = 0.25  # while the attach scan loads, the list and header are redrawn at most this often
BIG_HISTORY = 5_000  # artefacts: from this many, history mode's timeline is built in a thread


class HistoryView:
    """History mode: the timeline, the change shown (1..N) and the model of the blackboard after it."""

    def __init__(self, timeline: Timeline, index: int) -> None:
        self.timeline = timeline
        self.index = timeline.clamp(index)
        self.model = timeline.model_at(self.index)
        self.arrived = 0  # feed batches that changed the present while this moment was shown

    def go(self, index: int) -> bool:
        index = self.timeline.clamp(index)
        if index == self.index:
            return False
        self.model = self.timeline.move(self.model, index)  # change by change when near: cheap at 100k
        self.index = self.model.index
        return True

    @property
    def moment_ts(self) -> int:
        return self.timeline.moments[self.index - 1].ts_ms if self.index else 0

    def header(self, tz: tzinfo) -> Text:
        when = datetime.fromtimestamp(self.moment_ts / 1000, tz).strftime("%Y-%m-%d %H:%M:%S") \
            if self.moment_ts > 0 else "--"
        return Text(f" HISTORY {when} (change {self.index}/{len(self.timeline)}) ", style="bold white on magenta")

    def notice(self) -> str:
        m = self.timeline.moments[self.index - 1] if self.index else None
        what = f"change {self.index}: {s(m.text, 100)}" if m is not None else "no change yet"
        behind = f" │ the present moved on ({self.arrived} updates)" if self.arrived else ""
        return f"⏪ {what} │ [ ] step, {{ }} first/last, h or esc: back to live{behind}"


class HoltTui(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "holt-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 (typed on App)
    COMMANDS: ClassVar[set[Any]] = {*App.COMMANDS, ActionsProvider}
    # Order matters: the footer shows the keys that apply now, most important first (it is cut at the right
    # edge of a small terminal). Keys that do not apply are hidden; pressing one runs its ``refuse`` fallback
    # (show=False), which says in one line why nothing happened.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False, id="app.quit"),
        # History mode's keys come first: they are shown only in history mode, where no control key is.
        Binding("left_square_bracket", "history_back", "Back", id="history.back"),
        Binding("right_square_bracket", "history_forward", "Fwd", id="history.forward"),
        Binding("left_curly_bracket", "history_start", "Start", id="history.start"),
        Binding("right_curly_bracket", "history_end", "End", id="history.end"),
        Binding("h", "leave_history", "Live", id="history.leave"),
        Binding("escape", "leave_history", "Live", show=False, id="history.leave_esc"),
        Binding("s", "step", "Step", id="debug.step"),
        Binding("c", "continue_decision", "Continue", id="debug.continue"),
        # Shift+K, not k: k moves up in every list, and a scroll key must never drop a decision.
        Binding("K", "skip", "Skip", id="debug.skip"),
        Binding("a", "answer", "Answer", id="inbox.answer"),
        Binding("r", "reject", "Reject", id="inbox.reject"),
        Binding("slash", "filter", "Search", id="app.filter"),
        Binding("n", "search_next", "Next", id="app.search_next"),
        Binding("N", "search_previous", "Prev", id="app.search_previous"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit_q"),
        # One key, two bindings: the footer shows whichever applies now (check_action hides the other).
        Binding("p", "pause", "Pause", id="debug.pause"),
        Binding("p", "resume", "Resume", id="debug.resume"),
        # gdb's ``until``: the selected decision's workflow runs on to its Terminal, the others stay held.
        Binding("u", "run_to_terminal", "To Terminal", id="debug.run_to_terminal"),
        Binding("b", "breakpoint", "Break", id="debug.breakpoint"),
        # The breakpoints panel (Debug tab): add with conditions, enable/disable and delete the selected one.
        Binding("B", "add_breakpoint", "Add bp", id="debug.add_breakpoint"),
        Binding("e", "toggle_breakpoint_enabled", "On/off", id="debug.toggle_breakpoint"),
        Binding("d", "delete_breakpoint", "Delete", id="debug.delete_breakpoint"),
        Binding("i", "inject", "Review", id="action.inject"),
        Binding("t", "terminate", "Terminate", id="action.terminate"),
        Binding("y", "copy_id", "Copy id", id="data.copy_id"),
        Binding("Y", "copy_payload", "Copy payload", id="data.copy_payload"),
        Binding("o", "open_pager", "Pager", id="data.pager"),
        Binding("w", "save_payload", "Save", id="data.save"),
        Binding("f", "follow", "Follow", id="app.follow"),
        Binding("colon", "command_line", "Command", id="app.command_line"),
        Binding("x", "dismiss_notice", "Dismiss", id="app.dismiss_notice"),
        # Not in the live footer (its room is for the keys that act); ? and the palette list it.
        Binding("h", "history", "History", show=False, id="history.enter"),
        # Priority: the tab keys work from any focus (check_action lets text fields keep their digits).
        *(Binding(str(n), f"show_pane('{pane}')", label, show=False, priority=True, id=f"app.pane_{pane}")
          for n, (pane, label) in enumerate(zip(PANES, PANE_LABELS, strict=True), start=1)),
        # The fallbacks: a key whose action does not apply now says why instead of doing nothing.
        *(Binding(key, f"refuse('{action}')", "", show=False, id=f"refuse.{action}")
          for key, action in REFUSABLE),
    ]

    def __init__(
        self,
        instance: str,
        start_feed: FeedStarter,
        *,
        config: TuiConfig | None = None,
        sources: Sources | None = None,
        read_only: bool = False,
        replay: bool = False,
        operator: str = "",
        recorder: Recorder | None = None,
        history_at: tuple[str, int] | None = None,
    ) -> None:
        self.config = config or TuiConfig()
        super().__init__()
        self.instance = instance
        self.live_model = LiveModel(instance, max_log_lines=self.config.max_log_lines)
        # Time travel: claim states seen live (with their time), and the moment shown in history mode.
        self.journal = ClaimJournal()
        self.history: HistoryView | None = None
        self._history_at = history_at  # replay --at: enter history mode there once the recording is loaded
        self._feed_time: int | None = None  # a replay's own clock (the recording's times)
        self._history_building = False
        self.feed: deque[FeedItem] = deque()
        self._start_feed = start_feed
        self.sources = sources or null_sources()
        self.read_only = read_only or replay
        self.replay = replay
        self.operator = operator
        self.recorder = recorder
        self.lease = LeaseState(False, "", "read-only" if self.read_only else "taking control...")
        self.following = False
        self.new_count = 0
        self.action_log: list[Text] = []
        self.exit_note = ""  # printed after the app has left the screen (q)
        self._payloads = PayloadCache(self.config.max_payload_chars)
        self._stale: set[str] = set(PANES)
        self._last_clock = -1
        self._rows_drawn_at = -1
        self._drained = 0
        self._slice_queued = False
        self._status_queued = False
        self._selection_queued = False  # the panes that follow the selection wait for the list's frame
        self._unpainted = Change()  # what the drain has applied to the model but not drawn yet (while loading)
        self._painted_at = -_LOAD_PAINT_S
        # "Why not moving" from the debug plane (live attach only): claim id -> reasons, for the selection.
        self._explained: dict[str, list[str]] = {}
        self._explained_for: str | None = None
        self._explain_wanted = False
        self._explain_running = False
        # Set once the attach scan's first page (or all of a small instance) is on screen: what waits for it
        # (holt_tui/main.py loads the control planes then) stays off the path to the first frame.
        self.first_page_shown = asyncio.Event()
        if not self.config.animations:
            self.animation_level = "none"

    @property
    def model(self) -> LiveModel:
        """What the UI shows: the live model, or in history mode the blackboard as it was at that moment."""
        return self.history.model if self.history is not None else self.live_model

    # ------------------------------------------------------------------------------------------ layout

    @property
    def _main(self) -> Screen[object]:
        """The main screen: the 10 Hz drain and the actions keep updating it while a dialog is on top."""
        return self.screen_stack[0]

    def compose(self) -> ComposeResult:
        now, tz = self.config.clock_ms, self.config.tz
        yield Static(id="header", markup=False)
        yield Static(id="notice", markup=False)
        with Vertical(id="main"):
            with Vertical(id="left"):
                yield Static(id="graph-status", markup=False)
                yield ArtefactGraph(self.model, now, tz, id="graph")
            with TabbedContent(id="panes", initial="inspector"):
                with TabPane("1 Inspect", id="inspector"):
                    yield InspectorLines(id="inspector-view")
                with TabPane("2 Graph", id="neighbourhood"):
                    yield TextLines(id="neighbourhood-view")
                with TabPane("3 Agents", id="agents"):
                    yield AgentsList(now, id="agents-list")
                with TabPane("4 Events", id="events"):
                    yield EventLog(tz, id="event-log")
                with TabPane("5 Audit", id="audit"):
                    yield AuditTail(tz, id="audit-tail")
                with TabPane("6 Inbox", id="inbox"):
                    yield Static(id="inbox-status", markup=False)
                    yield InboxList(now, id="inbox-list")
                    yield TextLines(id="inbox-detail")
                with TabPane("7 Debug", id="debugger"):
                    yield Static(id="debug-status", markup=False)
                    yield HeldList(self.model, now, id="held")
                    yield TextLines(id="held-detail")
                    yield Static("Breakpoints", id="breakpoints-title")
                    yield BreakpointsList(id="breakpoints")
                    yield Static("Actions (this session)", id="actions-title")
                    yield TextLines(id="action-log")
        yield PromptBar(id="prompt")
        # The palette (ctrl+p) is listed by ? instead: on a small terminal the footer's room is for the keys.
        yield KeyFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.theme = self.config.theme
        prompt = self._main.query_one(PromptBar)
        prompt.cursor_blink = self.config.cursor_blink
        prompt.display = False
        self._render_status()
        self._render_debugger()
        self._render_inbox()
        self._main.query_one(ArtefactGraph).focus()
        self.run_worker(self._start_feed(self.push), name="feed", group="feed", exit_on_error=False)
        self.set_interval(self.config.drain_interval_s, self.drain, name="drain")
        if not self.read_only:
            self.run_worker(self._take_lease(), name="lease", group="lease", exit_on_error=False)

    async def on_unmount(self) -> None:
        if self.lease.held:
            await self.sources.debug.release_lease()
        if self.recorder is not None:
            self.recorder.close()

    # ------------------------------------------------------------------------------------------ feed

    def push(self, item: FeedItem) -> None:
        """The sink of the reader / replay: O(1), no widget work (that happens in ``drain``)."""
        self.feed.append(item)
        if isinstance(item, ClaimSeen):
            self.journal.note(self._feed_time or self.config.clock_ms(), item.state)
        elif isinstance(item, ScanPage) and item.first and not self._slice_queued:
            self._slice_queued = True  # the first page of a scan is drawn at once, not at the next drain tick
            self.call_later(self._next_slice)
        if self.recorder is not None:
            self.recorder.write(item)

    def drain(self) -> None:
        """Apply what arrived since the last tick as one batch of keyed changes (at most ``drain_budget_s`` of
        work: a bigger backlog, such as the attach scan, is applied in further slices right after)."""
        if not self.is_running:
            # Shutting down: Textual prunes the screens before it stops the app's timers.
            return
        now_s = self.config.clock_ms() // 1000
        if now_s != self._last_clock:
            # Ages tick even while the feed never runs dry (a live instance sends something every second).
            self._last_clock = now_s
            self._tick()
        if not self.feed:
            return
        if self._history_building:
            return  # a thread reads the live model: the feed waits in its deque until it is done
        was_loading = self.live_model.loading
        # A slice of the backlog per call (a scan page is one item): keys are handled between slices, and a
        # backlog is drained by further slices at once, not at the next tick.
        change, applied = self.live_model.apply_for(self.feed, self.config.drain_budget_s, self.config.monotonic)
        self._drained += applied
        if self.recorder is not None:
            self.recorder.flush()
        if self.history is not None:
            self._history_consumed(change)  # the present moves on behind the moment shown
        else:
            to_show = self._paint_now(change)
            if to_show is not None:
                with self.batch_update():
                    self.apply_change(to_show)
                if not self.first_page_shown.is_set() and (self.live_model.artefacts or not self.live_model.loading):
                    self.call_after_refresh(self.first_page_shown.set)
        if self._history_at is not None and self.live_model.connection == "ended":
            self._open_history_at(self._history_at)
        if was_loading:
            # Loaded records are long-lived: keep full collections from re-scanning them while the scan goes on,
            # and after it (at 100k artefacts a full collection would otherwise stall the loop for 100+ ms).
            gc.freeze()
        if self.feed and not self._slice_queued:
            self._slice_queued = True
            # Through the event loop, not straight onto the message queue: Textual handles queued messages back
            # to back without yielding, so a chain of slices would starve the screen's refresh, the reader and
            # every timer until the feed is empty (hundreds of ms at the end of a 100k scan).
            asyncio.get_running_loop().call_soon(self.call_later, self._next_slice)

    def _paint_now(self, change: Change) -> Change | None:
        """While the scan loads pages (and nothing else changed), the list and header are redrawn at most
        ``_LOAD_PAINT_S`` apart: a page lands above the cursor, so the view looks the same, and each redraw is a
        frame of its own. Returns the change to show now (with what was held back), or None to hold it."""
        self._unpainted.merge(change)
        quiet = not (change.claims or change.debug or change.inbox or change.events or change.audit
                     or change.new_artefacts)
        now = self.config.monotonic()
        if self.live_model.loading and quiet and now - self._painted_at < _LOAD_PAINT_S:
            return None
        self._painted_at = now
        held, self._unpainted = self._unpainted, Change()
        return held

    def _next_slice(self) -> None:
        self._slice_queued = False
        self.drain()

    def _tick(self) -> None:
        """Once a second: ages tick (header clock, held decisions, inbox, the inspector's "ago")."""
        self._render_status()
        self._main.query_one(ArtefactGraph).refresh_changed()  # the rows whose age now reads differently
        pane = self._active_pane()
        if pane == "debugger":
            self._main.query_one(HeldList).refresh()
            self._render_held_detail()
        elif pane == "inbox":
            self._main.query_one(InboxList).invalidate()
        elif pane == "agents" or (pane == "inspector" and self._last_clock % 10 == 0):
            # The inspector's ages ("4m ago") move slowly and it can hold a big payload: every 10 s is enough.
            self._stale.add(pane)
            self._refresh_active_pane(keep_scroll=True)

    def apply_change(self, change: Change) -> None:
        graph = self._main.query_one(ArtefactGraph)
        if change.artefacts or change.claims or change.debug or change.inbox:
            had_rows = bool(graph.items)
            # Badges follow claims, holds and the inbox (holt_core/claim_stage.py); ages tick in ``_tick``.
            minute = self.config.clock_ms() // 10_000
            graph.reload(invalidate=change.claims or change.debug or change.inbox or minute != self._rows_drawn_at)
            self._rows_drawn_at = minute
            if change.new_artefacts:
                if self.following:
                    self._follow_key = change.new_artefacts[-1]
                    root = self.model.root_of(self._follow_key)
                    if root in self.model.collapsed:  # following shows the newest: its workflow unfolds
                        self.model.set_collapsed(root, False)
                        graph.reload()
                    graph.select_key(self._follow_key)
                else:
                    self.new_count += len(change.new_artefacts)
                    goals = [a for a in change.new_artefacts if not self.model.artefacts[a].source_artefacts]
                    if goals:
                        g = self.model.artefacts[goals[-1]]
                        self.say(f"new workflow {s(g.type, 30)} {g.id[:8]} ({len(goals)} new): f follows it, "
                                 f":goto {g.id[:8]} selects it", severity="information")
            if not had_rows and graph.items:
                self._selection_changed()
        selected = self.selected_artefact
        touches_selection = selected is not None and any(
            selected in self.model.artefacts[a].source_artefacts for a in change.new_artefacts)
        if change.claims or change.debug or change.inbox or touches_selection or (change.artefacts and not selected):
            self._stale.update(("inspector", "neighbourhood"))
            if change.claims or change.debug or change.inbox:
                self._request_explain()
        if change.artefacts or change.claims:
            self._stale.add("agents")
        if change.events:
            self._stale.add("events")
        if change.audit:
            self._stale.add("audit")
        if change.inbox:
            self._render_inbox()
        if change.debug:
            self._render_debugger()
        self._refresh_active_pane(keep_scroll=True)
        self._render_status_after_paint()
        if change.debug or change.inbox:
            self.refresh_bindings()

    def _render_status_after_paint(self) -> None:
        """The header changes with nearly every drain. A frame repaints the box around everything that changed,
        so the header (top row) changing with the list meant the whole screen every drain: it is drawn in a frame
        of its own, right after the one that draws the list."""
        if not self._status_queued:
            self._status_queued = True
            self.call_after_refresh(self._render_status_now)

    def _render_status_now(self) -> None:
        self._status_queued = False
        if self.is_running:
            self._render_status()

    # ------------------------------------------------------------------------------------------ drawing

    @property
    def selected_artefact(self) -> str | None:
        return self._main.query_one(ArtefactGraph).artefact_id

    def _active_pane(self) -> str:
        return self._main.query_one(TabbedContent).active or "inspector"

    def _refresh_active_pane(self, *, keep_scroll: bool) -> None:
        pane = self._active_pane()
        if pane not in self._stale or (self._selection_queued and pane in ("inspector", "neighbourhood")):
            return  # (a moved selection draws them right after the list's frame, from the top)
        self._stale.discard(pane)
        now, tz = self.config.clock_ms(), self.config.tz
        match pane:
            case "inspector":
                selected = self.selected_artefact
                explained = None
                if self._live_explain:
                    explained = self._explained if self._explained_for == selected else {}
                lines = inspector_lines(self.model, selected, self._payloads, now, tz, explained)
                words = self._main.query_one(ArtefactGraph).filter.words
                if words:
                    for line in lines:
                        line.highlight_words(words, SEARCH_STYLE, case_sensitive=False)
                self._main.query_one("#inspector-view", TextLines).show(lines, keep_scroll=keep_scroll)
            case "neighbourhood":
                lines = neighbourhood_lines(self.model, self.selected_artefact)
                self._main.query_one("#neighbourhood-view", TextLines).show(lines, keep_scroll=keep_scroll)
            case "agents":
                self._main.query_one(AgentsList).set_items(self.model.agents())
            case "events":
                self._main.query_one(EventLog).set_items(list(self.model.events))
            case "audit":
                self._main.query_one(AuditTail).set_items(list(self.model.audit))

    def _mode_text(self) -> tuple[str, str]:
        if self.replay:
            return "REPLAY (read-only)", "bold blue"
        if self.read_only:
            return "READ-ONLY", "bold yellow"
        if self.lease.held:
            return f"CONTROL ({s(self.lease.holder or self.operator, 20)})", "bold green"
        return "OBSERVE (no control)", "yellow"

    def _render_status(self) -> None:
        m = self.model
        dot = {"live": ("●", "green"), "scanning": ("◌", "yellow"), "connecting": ("◌", "yellow"),
               "lost": ("✗", "bold red"), "replay": ("▶", "cyan"), "ended": ("■", "cyan")}
        glyph, style = dot.get(m.connection, ("?", ""))
        # Most important first (a small terminal cuts the right end): instance, connection, held, waiting.
        t = Text(f"{s(self.instance, 40)} ", style="bold")
        t.append(f"│ {glyph} {m.connection} ", style=style)
        if self.history is not None:
            t.append(self.history.header(self.config.tz))
        if m.debug.supported or m.debug.held:
            held = len(m.debug.held)
            t.append("│ ")
            t.append(f"⏸ {held} held ", style="bold red" if held else "dim")
        if m.inbox.supported or m.inbox.items:
            waiting = sum(1 for i in m.inbox.items if i.status == "open")
            t.append("│ ")
            t.append(f"✉ {waiting} waiting ", style="bold yellow" if waiting else "dim")
        mode, mode_style = self._mode_text()
        t.append("│ ")
        t.append(mode, style=mode_style)
        if m.loading and m.connection not in ("replay", "ended"):
            t.append(f" │ loading {len(m.artefacts):,}/{max(m.total_hint, len(m.artefacts)):,}", style="yellow")
        orch = "orchestrator up" if m.info.orchestrator_alive else "orchestrator down"
        if not self.replay:
            t.append(f" │ {orch}", style="" if m.info.orchestrator_alive else "red")
        t.append(f" │ {m.workflow_count()} wf · {len(m.artefacts):,} artefacts · {m.open_claims()} open claims")
        if m.skipped:
            t.append(f" │ ⚠ {len(m.skipped)} unreadable", style="yellow")
        now = self.config.clock_ms()
        t.append(f" │ {s(self.config.host, 30)} {clock(now, self.config.tz)}", style="dim")
        header = self._main.query_one("#header", Static)
        if header.content != t:  # unchanged (a key press redraws the status): no repaint
            header.update(t, layout=False)  # one line, always: no layout pass
        notice = self._main.query_one("#notice", Static)
        text = ""
        if m.connection == "lost":
            text = f"✗ connection to Redis lost ({s(m.connection_detail, 80)}): reconnecting, then resyncing..."
        elif m.resync_notice:
            text = f"⟳ {m.resync_notice}  (x dismisses)"
        if self.history is not None:
            text = self.history.notice()
        if notice.content != text:  # a layout pass repaints the whole screen: only when the notice changes
            notice.update(text)
            notice.display = bool(text)
        status = Text(f"follow: {'on' if self.following else 'off'}", style="bold green" if self.following else "")
        if self.new_count and not self.following:
            status.append(f" │ {self.new_count} new (f follows)", style="bold yellow")
        graph = self._main.query_one(ArtefactGraph)
        if graph.filter.is_active:
            status.append(f" │ filter: {s(graph.filter.source, 40)} ({len(graph.items)} rows)", style="cyan")
        graph_status = self._main.query_one("#graph-status", Static)
        if graph_status.content != status:
            graph_status.update(status, layout=False)

    def _render_debugger(self) -> None:
        d = self.model.debug
        status = self._main.query_one("#debug-status", Static)
        if not d.supported:
            status.update("Debugger: this instance has no debugging control plane yet. Keys s/n step, c continue, "
                          "K skip, p pause, b breakpoint work once it has.")
        else:
            status.update(f"Debugger: {s(self.lease.message, 80)} │ "
                          f"{'FULL CONTROL (every decision waits)' if d.full_control else 'running'}"
                          f" │ lease: {s(d.lease_holder or 'nobody', 30)} │ {len(d.held)} held │ "
                          f"{len(d.breakpoints)} breakpoints"
                          + (f" │ {len(d.runs)} workflow(s) running to their Terminal (u)" if d.runs else ""))
        self._main.query_one(HeldList).set_items(list(d.held))
        self._render_held_detail()
        self._main.query_one(BreakpointsList).set_items(list(d.breakpoints))
        log = self.action_log or [Text("actions you take in this session appear here, with their result",
                                       style="dim italic")]
        view = self._main.query_one("#action-log", TextLines)
        view.show(log, keep_scroll=True)  # every action of the session; the newest stays in view
        view.scroll_end(animate=False, immediate=True)

    def _render_held_detail(self) -> None:
        held: HeldDecision | None = self._main.query_one(HeldList).current_item
        lines = held_lines(self.model, held, self.config.clock_ms()) if held is not None else [
            Text("no decision is held: b on an artefact sets a breakpoint on its type, p pauses everything",
                 style="dim italic")]
        self._main.query_one("#held-detail", TextLines).show(lines, keep_scroll=True)

    def _render_inbox(self) -> None:
        inbox = self.model.inbox
        status = self._main.query_one("#inbox-status", Static)
        waiting = [i for i in inbox.items if i.status == "open"]
        if not inbox.supported:
            status.update("Inbox: this instance has no human-in-the-loop plane yet. a answers/approves, r rejects "
                          "once it has.")
        else:
            status.update(f"Inbox: {len(waiting)} waiting (oldest first) │ a answer/approve │ r reject")
        lst = self._main.query_one(InboxList)
        lst.set_items(list(inbox.items))
        self._render_inbox_detail()

    def _render_inbox_detail(self) -> None:
        item: InboxItem | None = self._main.query_one(InboxList).current_item
        lines = [Text("select a request to read it", style="dim italic")] if item is None else [
            Text(f"{item.kind}: {s(item.title, 200)}", style="bold"),
            Text(f"from {s(item.requester, 60)} · claim {item.claim_id[:8]} · artefact {item.artefact_id[:8]}"
                 + (f" · risk {s(item.risk, 10)}" if item.risk else ""), style="dim"),
            *[Text(line) for line in s(item.body, 4000).split("␊")[:50]],
        ]
        self._main.query_one("#inbox-detail", TextLines).show(lines)

    # ------------------------------------------------------------------------------------------ events

    def on_row_selected(self, message: RowSelected) -> None:
        if message.list_id == "graph":
            # A move that follow mode made itself keeps following; any other move ends it.
            if self.following and message.key != self._follow_key:
                self.following = False
            self._selection_moved()
        elif message.list_id == "breakpoints":
            self.refresh_bindings()
        elif message.list_id == "held":
            self._render_held_detail()
            self.refresh_bindings()
        elif message.list_id == "inbox-list":
            self._render_inbox_detail()
            self.refresh_bindings()

    _follow_key: str | None = None

    def _selection_moved(self) -> None:
        """The list's cursor moved (a key, a click): the list repaints its two cursor lines in this frame, and the
        panes that follow the selection (inspector, graph) in the next one. Drawn in the same frame, they made the
        key's repaint span both columns; a burst of keys draws the panes once, for where the cursor stopped."""
        self._stale.update(("inspector", "neighbourhood"))
        if not self._selection_queued:
            self._selection_queued = True
            self.call_after_refresh(self._selection_drawn)

    def _selection_drawn(self) -> None:
        if not self._selection_queued:
            return  # drawn meanwhile (the selection changed by other means)
        self._selection_queued = False
        if self.is_running:
            self._selection_changed()

    def _selection_changed(self) -> None:
        self._selection_queued = False
        self._stale.update(("inspector", "neighbourhood"))
        self._request_explain()
        self._refresh_active_pane(keep_scroll=False)
        self._render_status()
        self.refresh_bindings()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._request_explain()
        self._refresh_active_pane(keep_scroll=False)
        self.refresh_bindings()

    def on_prompt_submitted(self, message: PromptSubmitted) -> None:
        if message.mode == "filter":
            self._apply_filter(message.text, message.target)
        else:
            self.run_command_line(message.text)
        self._refocus(message.target)

    def on_prompt_cancelled(self, message: PromptCancelled) -> None:
        self._refocus(message.target)

    def on_action_done(self, message: ActionDone) -> None:
        if not self.is_running:
            return  # a worker finished while the app shuts down: there is no screen to show it on
        style = "green" if message.ok else "red"
        stamp = clock(self.config.clock_ms(), self.config.tz)
        self.action_log.append(Text(f"{stamp} {message.action}: {s(message.message, 200)}", style=style))
        self.notify(s(message.message, 200), title=message.action, severity="information" if message.ok else "error")
        self._render_debugger()

    # ------------------------------------------------------------------------------------------ explain

    @property
    def _live_explain(self) -> bool:
        return not self.replay and self.history is None and "explain" in self.sources.debug.capabilities()

    def _request_explain(self) -> None:
        """Ask the debug plane why the selection's open claims are not moving, off the UI path.

        One worker at a time: requests made while it runs collapse into one more round, so a burst of claim
        changes costs at most two explains and a key press never waits for Redis.
        """
        if not self._live_explain or self._active_pane() != "inspector":
            return
        self._explain_wanted = True
        if not self._explain_running:
            self._explain_running = True
            self.run_worker(self._explain_rounds(), name="explain", group="explain", exit_on_error=False)

    async def _explain_rounds(self) -> None:
        try:
            while self._explain_wanted:
                self._explain_wanted = False
                selected = self.selected_artefact
                if selected is None:
                    continue
                claims = [st.claim.id for st in self.model.claims_of(selected) if st.claim.status.is_open]
                if not self.model.claims_of(selected):
                    claims = [selected]  # no claim (yet): explain the artefact itself (a held claim creation)
                reasons: dict[str, list[str]] = {}
                for claim_id in claims:
                    try:
                        reasons[claim_id] = await self.sources.debug.explain(claim_id)
                    except loaded_errors("RedisError", also=(HoltError, OSError)) as err:
                        reasons[claim_id] = [f"cannot ask the debug plane: {err}"]
                self.post_message(Explained(selected, reasons))
        finally:
            self._explain_running = False

    def on_explained(self, message: Explained) -> None:
        if not self.is_running or message.artefact_id != self.selected_artefact:
            return  # the selection moved on; its own round is on the way
        self._explained = message.reasons
        self._explained_for = message.artefact_id
        self._stale.add("inspector")
        self._refresh_active_pane(keep_scroll=True)

    def _refocus(self, target: str | None) -> None:
        if target:
            widgets = self._main.query(f"#{target}")
            if widgets:
                widgets.first().focus()
                return
        self._main.query_one(ArtefactGraph).focus()

    # ------------------------------------------------------------------------------------------ navigation

    def _focused_list(self) -> LineList:
        focused = self.focused
        if isinstance(focused, LineList) and focused.id not in ("help-text",):
            return focused
        return self._main.query_one(ArtefactGraph)

    def action_help(self) -> None:
        rows: list[tuple[str, str, bool]] = []
        seen: set[str] = set()
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.id in seen or (binding.id or "").startswith(("refuse.", "history.")):
                continue
            seen.add(binding.id or binding.key)
            action = binding.action.split("(")[0]
            enabled = self.check_action(action, ()) is True
            rows.append((binding.key.replace("question_mark", "?").replace("colon", ":").replace("slash", "/"),
                         binding.description, enabled))
        rows += [("h", "History mode: the blackboard as it was (h or esc: back to live)",
                  self.history is not None or self.check_action("history", ()) is True),
                 ("[ ] { }", "History: step back / forward one change, first / last change", self.history is not None),
                 ("enter", "Inspector: jump to the linked artefact", True),
                 ("j/k ↑/↓", "Move in a list", True), ("g/G home/end", "First / last row", True),
                 ("ctrl+f/ctrl+b", "Page down / up", True), ("tab", "Next panel", True),
                 ("ctrl+p", "Command palette: every action", True)]
        self.push_screen(HelpScreen(rows))

    # ------------------------------------------------------------------------------------------ data out

    def _selected_ids(self) -> list[str]:
        """What ``y`` copies: the focused list's selection (held decision, request, breakpoint) or the artefact."""
        focused = self.focused
        if isinstance(focused, HeldList) and focused.current_item is not None:
            h = focused.current_item
            return [h.id, h.claim_id]
        if isinstance(focused, InboxList) and focused.current_item is not None:
            return [focused.current_item.id]
        if isinstance(focused, BreakpointsList) and focused.current_item is not None:
            return [focused.current_item.id]
        a = self.selected_artefact
        return [a] if a is not None else []

    def _selected_payload(self) -> ArtefactRecord | None:
        a = self.selected_artefact
        return self.model.artefacts.get(a) if a is not None else None

    def action_copy_id(self) -> None:
        ids = self._selected_ids()
        if ids:
            self.copy_to_clipboard(ids[0])
            self.say(f"copied {ids[0]} to the clipboard (OSC 52)", severity="information")

    def action_copy_payload(self) -> None:
        a = self._selected_payload()
        if a is not None:
            self.copy_to_clipboard(a.payload)
            self.say(f"copied the payload of {s(a.type, 40)} v{a.version} ({len(a.payload):,} chars, OSC 52)",
                     severity="information")

    def action_open_pager(self) -> None:
        a = self._selected_payload()
        if a is None:
            return
        pager = os.environ.get("PAGER") or "less"
        text = pretty_payload(a.payload, max_chars=len(a.payload) + 1).lines
        try:
            with self.suspend():
                subprocess.run([*shlex.split(pager)], input="\n".join(text) + "\n", text=True, check=False)
        except (SuspendNotSupported, OSError, ValueError) as err:
            self.say(f"pager: cannot open {s(pager, 40)} here ({s(str(err) or type(err).__name__, 80)}); "
                     "w saves the payload to a file instead")

    def action_save_payload(self) -> None:
        a = self._selected_payload()
        if a is None:
            return
        default = f"{_safe_name(a.type)}-v{a.version}-{a.id[:8]}.txt"
        self._dialog(f"save {a.id[:8]}", lambda path: self._save(a.payload, path),
                     f"Save the payload of {s(a.type, 40)} v{a.version} to a file", "", "File:",
                     required="a file name is required", initial=default)

    async def _save(self, text: str, path: str) -> ActionResult:
        return self._save_now(text, path)

    @staticmethod
    def _save_now(text: str, path: str) -> ActionResult:
        target = Path(path.strip()).expanduser()
        if target.exists():
            return ActionResult(False, f"{target} exists: choose another name")
        try:
            target.write_text(text)
        except OSError as err:
            return ActionResult(False, f"cannot write {target}: {err.strerror or err}")
        return ActionResult(True, f"saved {len(text):,} chars to {target}")

    def _export(self, args: list[str]) -> None:
        """``:export dot|mermaid [FILE]``: the selected artefact's workflow graph."""
        a = self.selected_artefact
        if not args or args[0] not in ("dot", "mermaid"):
            self.say("export: write :export dot FILE or :export mermaid FILE", severity="error")
            return
        if a is None:
            self.say("export: select an artefact of the workflow to export first")
            return
        text = workflow_dot(self.model, a) if args[0] == "dot" else workflow_mermaid(self.model, a)
        root = self.model.root_of(a)
        path = Path(args[1] if len(args) > 1 else f"workflow-{root[:8]}.{'dot' if args[0] == 'dot' else 'mmd'}")
        try:
            path.expanduser().write_text(text)
        except OSError as err:
            self.say(f"export: cannot write {s(str(path), 80)}: {err.strerror or err}", severity="error")
            return
        self.say(f"exported workflow {root[:8]} as {args[0]} to {s(str(path), 80)}", severity="information")

    def on_link_followed(self, message: LinkFollowed) -> None:
        graph = self._main.query_one(ArtefactGraph)
        if message.target not in self.model.artefacts:
            self.say("that artefact is not loaded")
            return
        if not graph.select_key(message.target):
            graph.set_filter(NO_FILTER)
            if not graph.select_key(message.target):
                self.say("that artefact is not in the list")
                return
            self.say("the search was cleared to show the linked artefact", severity="information")

    def quit_message(self) -> str:
        if self.replay:
            return "holt-tui: replay closed."
        name = s(self.instance, 60)
        if self.model.connection == "lost":
            return (f"holt-tui: quit while Redis was unreachable; {name} keeps running and a control lease "
                    "this session held expires by itself.")
        return (f"holt-tui: detached from {name}; the instance keeps running "
                f"(holt down --name {name} stops it, holt-tui attach {name} comes back).")

    async def action_quit(self) -> None:
        self.exit_note = self.quit_message()
        self.exit()

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run; after a quit, print one line (not wrapped or cut) saying what happens to the instance."""
        result = super().run(*args, **kwargs)
        if self.exit_note:
            print(self.exit_note, file=sys.stderr)
        return result

    def action_command_line(self) -> None:
        self._main.query_one(PromptBar).open("command", self.focused.id if self.focused else None)

    def action_filter(self) -> None:
        target = self._focused_list()
        self._main.query_one(PromptBar).open("filter", target.id, target.filter.source)

    def action_clear_filter(self) -> None:
        self._focused_list().set_filter(NO_FILTER)
        self._render_status()

    def _apply_filter(self, text: str, target: str | None) -> None:
        widgets = self._main.query(f"#{target}") if target else None
        lst = widgets.first() if widgets else self._main.query_one(ArtefactGraph)
        if not isinstance(lst, LineList):
            return
        try:
            f = ListFilter.parse(text, self.config.clock_ms()) if text.strip() else NO_FILTER
        except HoltError as err:
            self.notify(s(err.message, 200), title="filter", severity="error")
            return
        lst.set_filter(f)
        if isinstance(lst, ArtefactGraph):
            if f.is_active and not any(row[0] == "a" for row in lst.items):
                self.say(f'no match for "/{s(text, 60)}" in types, ids, roles, payloads (esc, then / and enter '
                         "with nothing clears it)")
            elif f.is_active:
                matches = sum(1 for row in lst.items if row[0] == "a")
                self.say(f'/{s(text, 60)}: {matches} match{"es" if matches != 1 else ""} (n next, N previous)',
                         severity="information")
                self._goto_match(+1, from_cursor=False)
            self._selection_changed()
        elif f.is_active and not lst.items:
            self.say(f'no match for "/{s(text, 60)}" in this list')
        self._render_status()

    def _search_text(self) -> str:
        graph = self._main.query_one(ArtefactGraph)
        return graph.filter.source if graph.filter.is_active else ""

    def _goto_match(self, step: int, *, from_cursor: bool = True) -> None:
        graph = self._main.query_one(ArtefactGraph)
        rows = graph.items
        if not rows:
            return
        n = len(rows)
        start = graph.cursor if from_cursor else (n - 1 if step > 0 else 0)
        for k in range(1, n + 1):
            i = (start + k * step) % n
            if rows[i][0] == "a":
                if (step > 0 and i <= graph.cursor and from_cursor) or (step < 0 and i >= graph.cursor
                                                                         and from_cursor):
                    self.say("search wrapped around", severity="information")
                graph.move_cursor(i)
                return

    def action_search_next(self) -> None:
        self._goto_match(+1)

    def action_search_previous(self) -> None:
        self._goto_match(-1)

    def action_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self.new_count = 0
            newest = self.model.newest_artefact()
            if newest is not None:
                self._follow_key = newest
                graph = self._main.query_one(ArtefactGraph)
                if self.model.root_of(newest) in self.model.collapsed:
                    self.model.set_collapsed(self.model.root_of(newest), False)
                    graph.reload()
                graph.select_key(newest)
        self._render_status()

    def action_dismiss_notice(self) -> None:
        self.model.dismiss_resync()
        self._render_status()

    def action_show_pane(self, pane: str) -> None:
        tabs = self._main.query_one(TabbedContent)
        focused = self.focused
        if focused is not None and tabs in focused.ancestors and tabs.active != pane:
            # Focus must not stay in the pane being hidden (the tabs would switch back to it): the new pane's
            # first list takes it, or the artefact list.
            lists = self._main.query_one(f"#{pane}").query(LineList)
            (lists.first() if lists else self._main.query_one(ArtefactGraph)).focus()
        tabs.active = pane
        self._refresh_active_pane(keep_scroll=False)

    def run_command_line(self, text: str) -> None:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            self.notify(f"command: {exc}", severity="error")
            return
        if not words:
            return
        head, rest = words[0].lower(), " ".join(words[1:])
        if head == "filter":
            self._apply_filter(rest, "graph")
            return
        if head == "goto":
            match = [a for a in self.model.artefacts if a.startswith(rest.lower())] if rest else []
            if len(match) != 1:
                self.notify(f"goto: {len(match)} artefacts match {s(rest, 40)!r}", severity="error")
                return
            graph = self._main.query_one(ArtefactGraph)
            if not graph.select_key(match[0]):
                self.notify("goto: that artefact is hidden by the filter", severity="warning")
            return
        if head == "export":
            self._export(words[1:])
            return
        if head == "at":
            self._history_seek(rest)
            return
        if head == "panel" and rest in PANES:
            self.action_show_pane(rest)
            return
        command = find_command(head)
        if command is None:
            self.notify(f"unknown command {s(head, 40)!r}: ? lists them", severity="error")
            return
        reason = self.refusal(command.action.split("(")[0])
        if reason is not None:
            self.say(reason)
            return
        self.call_later(self.run_action, command.action)

    # ------------------------------------------------------------------------------------------ control

    def command_available(self, c: Command) -> bool:
        return self.check_action(c.action.split("(")[0], ()) is True

    def _held(self) -> HeldDecision | None:
        """The held decision s/c/K act on: the one selected in the Debug tab's list (the oldest until moved)."""
        selected: HeldDecision | None = self._main.query_one(HeldList).current_item
        if selected is not None and any(h.id == selected.id for h in self.model.debug.held):
            return selected
        d = self.model.debug.held
        return d[0] if d else None

    def _inbox_item(self) -> InboxItem | None:
        item: InboxItem | None = self._main.query_one(InboxList).current_item
        return item if item is not None and item.status == "open" else None

    def _open_claim_of_selected(self) -> str | None:
        a = self.selected_artefact
        if a is None:
            return None
        for st in reversed(self.model.claims_of(a)):
            if st.claim.status.is_open:
                return st.claim.id
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Shown and enabled when the action applies now; hidden otherwise (its ``refuse`` fallback explains)."""
        if action == "show_pane":
            # A priority binding: in a text field (the prompt, a dialog: another screen) the digit is typed.
            return not isinstance(self.focused, Input) and self.screen is self._main
        if action == "refuse":
            return True
        if action == "history":
            return self.history is None
        return self.refusal(action) is None

    def refusal(self, action: str) -> str | None:
        """Why ``action`` does nothing now, in one line; None when it applies."""
        match action:
            case "search_next" | "search_previous":
                return None if self._search_text() else "no search: / searches types, ids, payloads and summaries"
            case "dismiss_notice":
                return None if self.model.resync_notice else "no notice to dismiss"
            case "history_back" | "history_forward" | "history_start" | "history_end" | "leave_history":
                return self._history_refusal(action)
            case "copy_id":
                return None if self._selected_ids() else "nothing selected to copy"
            case "copy_payload" | "open_pager" | "save_payload":
                return None if self._selected_payload() is not None else "select an artefact first"
        need = CONTROL.get(action)
        if need is None:
            return None
        what = _ACTION_NAMES.get(action, action)
        if self.history is not None:
            return f"{what}: history mode shows the past; h or esc returns to the present to act"
        if need == "inbox":
            if not self.model.inbox.supported:
                return f"{what}: this instance has no human-in-the-loop plane"
        elif need not in self.sources.debug.capabilities():
            return f"{what}: this instance has no debugging control plane"
        if self.replay:
            return f"{what}: a replay is read-only (attach to the live instance to act)"
        if self.read_only:
            return f"{what}: read-only session (started with --read-only); attach without it to act"
        match action:
            case "add_breakpoint" | "toggle_breakpoint_enabled" | "delete_breakpoint":
                if self._active_pane() != "debugger":
                    return f"{what}: works in the Debug tab (7)"
                if action != "add_breakpoint" and self._selected_breakpoint() is None:
                    return f"{what}: no breakpoint selected"
            case "pause" if self.model.debug.full_control:
                return "pause: already under full control (p resumes)"
            case "resume" if not self.model.debug.full_control:
                return "resume: not paused"
            case "step" | "continue_decision" | "skip" | "run_to_terminal":
                if self._held() is None:
                    return f"{what}: nothing held (no decision is waiting; b sets a breakpoint, p pauses)"
            case "breakpoint" | "inject":
                if self.selected_artefact is None:
                    return f"{what}: select an artefact first"
            case "terminate":
                if self._open_claim_of_selected() is None:
                    return f"{what}: the selected artefact has no open claim"
            case "answer" | "reject":
                item = self._inbox_item()
                if item is None:
                    return f"{what}: no open question or approval selected (6 shows the inbox)"
                if action == "reject" and item.kind != "approval":
                    return "reject: a question is answered (a), not rejected"
        return None

    def action_refuse(self, action: str) -> None:
        self.say(self.refusal(action) or f"{_ACTION_NAMES.get(action, action)}: not available now")

    def say(self, text: str, *, severity: SeverityLevel = "warning") -> None:
        """One line in the notification area and in the session's action log: never a silent key."""
        self.notify(s(text, 300), severity=severity, timeout=4)

    async def _perform(self, name: str, call: Awaitable[ActionResult]) -> ActionResult:
        """Run one control action; its result goes to the action log (and a dialog shows a refusal itself)."""
        try:
            result = await call
        except HoltError as err:
            result = ActionResult(False, err.message)
        except loaded_errors("RedisError", also=(OSError,)) as err:
            result = ActionResult(False, f"cannot reach Redis: {err}")
        self.post_message(ActionDone(name, result.ok, result.message))
        return result

    def _call(self, name: str, call: Awaitable[ActionResult]) -> None:
        self.run_worker(self._perform(name, call), group="actions", exit_on_error=False)

    def _dialog(self, name: str, work: Callable[[str], Awaitable[ActionResult]], title: str, detail: str = "",
                text_label: str | None = None, *, required: str | None = None, initial: str = "") -> None:
        """A dialog that carries the action out itself: a refusal keeps it open with the input as typed."""

        async def submit(text: str) -> ActionResult:
            return await self._perform(name, work(text))

        from holt_tui.screens.dialogs import ActionDialog  # with TextArea: loaded when first needed, not at start

        self.push_screen(ActionDialog(title, detail, text_label, initial, required=required, submit=submit))

    def action_step(self) -> None:
        held = self._held()
        if held is not None:
            self._call(f"step {_held_label(held)}", self.sources.debug.step(held.id))

    def action_continue_decision(self) -> None:
        held = self._held()
        if held is not None:
            self._call(f"continue {_held_label(held)}", self.sources.debug.continue_(held.id))

    def action_run_to_terminal(self) -> None:
        held = self._held()
        if held is not None:
            self._call(f"run to Terminal {_held_label(held)}", self.sources.debug.run_to_terminal(held.id))

    def action_fold(self) -> None:
        self._main.query_one(ArtefactGraph).action_fold()

    def action_skip(self) -> None:
        held = self._held()
        if held is None:
            return
        self._dialog(f"skip {_held_label(held)}", lambda _text: self.sources.debug.skip(held.id),
                     f"Skip the held decision: {s(held.would, 80)}?",
                     "The claim stays as it is; nothing is carried out.")

    def action_pause(self) -> None:
        self._call("pause", self.sources.debug.pause())

    def action_resume(self) -> None:
        self._call("resume", self.sources.debug.resume())

    def _selected_breakpoint(self) -> Breakpoint | None:
        item: Breakpoint | None = self._main.query_one(BreakpointsList).current_item
        return item

    def action_add_breakpoint(self) -> None:
        a = self.selected_artefact
        glob = self.model.artefacts[a].type if a is not None and a in self.model.artefacts else "*"

        async def submit(form: BreakpointForm) -> ActionResult:
            return await self._perform(f"add breakpoint {s(form.type_glob, 40)}",
                                       self.sources.debug.add_breakpoint(form.type_glob, form.conditions, form.action))

        from holt_tui.screens.dialogs import BreakpointDialog

        self.push_screen(BreakpointDialog(glob, submit))

    def action_toggle_breakpoint_enabled(self) -> None:
        bp = self._selected_breakpoint()
        if bp is not None:
            verb = "disable" if bp.enabled else "enable"
            self._call(f"{verb} breakpoint {s(bp.id, 20)}",
                       self.sources.debug.set_breakpoint_enabled(bp.id, not bp.enabled))

    def action_delete_breakpoint(self) -> None:
        bp = self._selected_breakpoint()
        if bp is None:
            return
        self._dialog(f"delete breakpoint {s(bp.id, 20)}", lambda _text: self.sources.debug.delete_breakpoint(bp.id),
                     f"Delete breakpoint {s(bp.id, 20)} on {s(bp.type_glob, 40)}?",
                     "Decisions it already holds stay held.")

    def action_breakpoint(self) -> None:
        a = self.selected_artefact
        if a is not None and a in self.model.artefacts:
            glob = self.model.artefacts[a].type
            self._call(f"break {s(glob, 40)}", self.sources.debug.toggle_breakpoint(glob))

    def action_answer(self) -> None:
        item = self._inbox_item()
        if item is None:
            return
        if item.kind == "question":
            self._dialog(f"answer {item.id[:8]}", lambda text: self.sources.inbox.answer(item.id, text),
                         f"Answer: {s(item.title, 200)}", "", "Your answer:",
                         required="an answer cannot be empty: type it, then ctrl+s (esc cancels)")
        else:
            need = " (required):" if item.needs_justification else ":"
            self._dialog(f"approve {item.id[:8]}", lambda text: self.sources.inbox.approve(item.id, text),
                         f"Approve: {s(item.title, 200)}", f"risk {s(item.risk, 10)}", "Justification" + need,
                         required="a justification is required for this approval" if item.needs_justification
                         else None)

    def action_reject(self) -> None:
        item = self._inbox_item()
        if item is None:
            return
        self._dialog(f"reject {item.id[:8]}", lambda text: self.sources.inbox.reject(item.id, text),
                     f"Reject: {s(item.title, 200)}", "", "Reason (passed back to the agent):",
                     required="a reason is required: the agent reads it to rework (esc cancels)")

    def action_inject(self) -> None:
        a = self.selected_artefact
        if a is None or a not in self.model.artefacts:
            return
        art = self.model.artefacts[a]
        self._dialog(f"review {a[:8]}", lambda text: self.sources.debug.inject_review(a, text.strip() or "{}"),
                     f"Inject a review on {s(art.type, 40)} v{art.version} ({a[:8]})",
                     "Empty (or {}) approves; any other text is feedback and starts rework.", "Review payload:")

    def action_terminate(self) -> None:
        claim = self._open_claim_of_selected()
        if claim is None:
            return
        self._dialog(f"terminate {claim[:8]}", lambda text: self.sources.debug.terminate(claim, text),
                     f"Terminate claim {claim[:8]}?", "The claim ends; agents are not granted it.", "Reason:",
                     required="a reason is required: it is recorded on the claim and in the audit trail")

    async def _take_lease(self) -> None:
        self.lease = await self.sources.debug.acquire_lease()
        if not self.is_running:
            return
        self._render_status()
        self.refresh_bindings()


    # ------------------------------------------------------------------------------------------ history

    def set_feed_time(self, ms: int) -> None:
        """A replay's clock: the recorded time of the item it feeds next (claim states are journalled with it)."""
        self._feed_time = ms

    def _timeline(self) -> Timeline:
        return build_timeline(self.live_model, self.journal)

    def action_history(self) -> None:
        """h: history mode at the last change; [ and ] then step through the changes."""
        self._enter_history(None)

    def _open_history_at(self, at: tuple[str, int]) -> None:
        """replay --at (once the whole recording is loaded) and :at: history mode at that change or time."""
        self._history_at = None
        self._enter_history(at)

    def _enter_history(self, at: tuple[str, int] | None) -> None:
        """Build the timeline (in a thread on a big instance: keys keep working meanwhile) and show the moment."""
        if self._history_building:
            self.say("history: still building the timeline")
            return
        n = len(self.live_model.artefacts)
        if n < BIG_HISTORY:
            self._history_ready(self._history_view(at), at)
            return
        # The drain leaves the live model alone until the thread is done (the feed waits in its deque).
        self._history_building = True
        self.say(f"history: building the timeline of {n:,} artefacts...", severity="information")
        self.run_worker(partial(self._history_thread, at), name="history", group="history", thread=True,
                        exit_on_error=False)

    def _history_view(self, at: tuple[str, int] | None) -> HistoryView | None:
        timeline = build_timeline(self.live_model, self.journal)
        if not timeline.moments:
            return None
        return HistoryView(timeline, len(timeline) if at is None else seek(timeline, at, self.config.tz))

    def _history_thread(self, at: tuple[str, int] | None) -> None:
        view: HistoryView | str | None
        try:
            view = self._history_view(at)
        except Exception as err:  # said in one line: the drain must resume whatever happened
            view = f"history: could not build the timeline ({type(err).__name__}: {err})"
        if self.is_running:
            self.call_from_thread(self._history_ready, view, at)

    def _history_ready(self, view: HistoryView | str | None, at: tuple[str, int] | None) -> None:
        self._history_building = False
        if view is None or isinstance(view, str):
            self.say(view or "history: nothing has happened on this blackboard yet")
            return
        self._show_history(view)
        n = len(view.timeline)
        where = "the present" if view.index == n else "that moment"
        self.say(f"history mode: change {view.index}/{n} is {where}; [ steps back, ] forward, h or esc returns to "
                 "live", severity="information")

    def _history_seek(self, text: str) -> None:
        """``:at N|TIME``: history mode at that change or time (from live mode too)."""
        try:
            at = parse_moment(text, self.config.tz)
        except ValueError as err:
            self.say(str(err), severity="error")
            return
        if self.history is None:
            self._open_history_at(at)
        else:
            self._history_go(seek(self.history.timeline, at, self.config.tz))

    def _history_refusal(self, action: str) -> str | None:
        what = _ACTION_NAMES.get(action, action)
        h = self.history
        if h is None:
            return f"{what}: not in history mode (h shows the blackboard as it was, change by change)"
        if action in ("history_back", "history_start") and h.index <= 1:
            return f"{what}: this is the first change"
        if action in ("history_forward", "history_end") and h.index >= len(h.timeline):
            return f"{what}: this is the last change seen (h or esc returns to live)"
        return None

    def action_history_back(self) -> None:
        self._history_go(-1, relative=True)

    def action_history_forward(self) -> None:
        self._history_go(+1, relative=True)

    def action_history_start(self) -> None:
        self._history_go(1)

    def action_history_end(self) -> None:
        self._history_go(1 << 62)

    def _history_go(self, k: int, *, relative: bool = False) -> None:
        h = self.history
        if h is not None and h.go(h.index + k if relative else k):
            self._show_history(h)

    def action_leave_history(self) -> None:
        if self.history is None:
            return
        arrived = self.history.arrived
        self.history = None
        self._redraw_all(self.live_model)
        self.say("back to live" + (f": {arrived} updates arrived meanwhile" if arrived else ""),
                 severity="information")

    def _history_consumed(self, change: Change) -> None:
        """A live batch while history mode shows the past: the present is kept up to date, the screen is not."""
        if self.history is not None and change.any:
            self.history.arrived += 1
            self.history.model.connection = self.live_model.connection
            self._render_status()

    def _show_history(self, h: HistoryView) -> None:
        self.history = h
        m = h.timeline.moments[h.index - 1] if h.index else None
        focus: str | None = None
        if m is not None:
            if m.key.startswith("a:"):
                focus = m.key[2:]
            elif m.key.startswith("c:") and m.key[2:] in h.model.claims:
                focus = h.model.claims[m.key[2:]].claim.artefact_id
        self._redraw_all(h.model, focus=focus)

    def _redraw_all(self, model: LiveModel, *, focus: str | None = None) -> None:
        """Point every view at ``model`` (the present or a moment) and redraw it all."""
        graph = self._main.query_one(ArtefactGraph)
        selected = graph.artefact_id
        model.set_filter(graph.filter)
        graph.model = model
        self._main.query_one(HeldList).model = model
        self._stale.update(PANES)
        with self.batch_update():
            graph.reload(invalidate=True)
            target = focus if focus in model.artefacts else selected
            if target is not None and target in model.artefacts:
                graph.select_key(target)
            self._render_inbox()
            self._render_debugger()
            self._selection_changed()


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:40] or "payload"


def _held_label(held: HeldDecision) -> str:
    return f"{s(held.kind, 30)} {(held.claim_id or held.artefact_id)[:8]}"


def pane_widgets(app: HoltTui) -> dict[str, Widget]:
    return {pane: app.query_one(f"#{pane}") for pane in PANES}


__all__ = ["COMMANDS", "HoltTui"]
