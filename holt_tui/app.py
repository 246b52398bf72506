"""``HoltTui``: the full-screen debugger. Widgets draw from the ``LiveModel``; the feed arrives in a deque.

The reader (or a replay) appends feed items to ``self.feed`` as they come; a timer drains the deque
5-10 times a second and applies the whole batch inside one ``batch_update()``, so a burst of thousands of
events costs one redraw, and keys stay responsive.
"""

from __future__ import annotations

import gc
import shlex
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from redis.exceptions import RedisError
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static, TabbedContent, TabPane

from holt_core.errors import HoltError
from holt_tui.breakpoint_form import BreakpointForm
from holt_tui.commands import COMMANDS, ActionsProvider, Command, find_command
from holt_tui.config import TuiConfig
from holt_tui.display import PayloadCache, clock, held_lines, inspector_lines, neighbourhood_lines, s
from holt_tui.feed import FeedItem
from holt_tui.filtering import NO_FILTER, ListFilter
from holt_tui.messages import ActionDone, Explained, PromptCancelled, PromptSubmitted, RowSelected
from holt_tui.model import Change, LiveModel
from holt_tui.recording import Recorder
from holt_tui.screens.dialogs import ActionDialog, BreakpointDialog
from holt_tui.screens.help import HelpScreen
from holt_tui.sources import ActionResult, Breakpoint, HeldDecision, InboxItem, LeaseState, Sources, null_sources
from holt_tui.widgets.lines import LineList
from holt_tui.widgets.prompt import PromptBar
from holt_tui.widgets.views import (
    AgentsList,
    ArtefactGraph,
    AuditTail,
    BreakpointsList,
    EventLog,
    InboxList,
    TextLines,
)

PANES = ("inspector", "neighbourhood", "agents", "events", "audit", "inbox", "debugger")
# Control actions, the capability each needs from the debug source ("inbox" = the inbox source).
CONTROL: dict[str, str] = {
    "step": "step", "continue_decision": "continue", "skip": "skip", "pause": "pause", "resume": "resume",
    "breakpoint": "breakpoint", "add_breakpoint": "breakpoint", "toggle_breakpoint_enabled": "breakpoint",
    "delete_breakpoint": "breakpoint", "inject": "inject_review", "terminate": "terminate",
    "answer": "inbox", "reject": "inbox",
}
FeedStarter = Callable[[Callable[[FeedItem], None]], Awaitable[None]]


class HoltTui(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "holt-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 (typed on App)
    COMMANDS: ClassVar[set[Any]] = {*App.COMMANDS, ActionsProvider}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
        Binding("q", "quit", "Quit", id="app.quit_q"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("colon", "command_line", "Command", id="app.command_line"),
        Binding("slash", "filter", "Filter", id="app.filter"),
        Binding("f", "follow", "Follow", id="app.follow"),
        Binding("x", "dismiss_notice", "Dismiss", id="app.dismiss_notice"),
        Binding("1", "show_pane('inspector')", "Inspector", show=False, id="app.pane_inspector"),
        Binding("2", "show_pane('neighbourhood')", "Graph", show=False, id="app.pane_graph"),
        Binding("3", "show_pane('agents')", "Agents", show=False, id="app.pane_agents"),
        Binding("4", "show_pane('events')", "Events", show=False, id="app.pane_events"),
        Binding("5", "show_pane('audit')", "Audit", show=False, id="app.pane_audit"),
        Binding("6", "show_pane('inbox')", "Inbox", show=False, id="app.pane_inbox"),
        Binding("7", "show_pane('debugger')", "Debugger", show=False, id="app.pane_debugger"),
        Binding("s,n", "step", "Step", id="debug.step"),
        Binding("c", "continue_decision", "Continue", id="debug.continue"),
        # Shift+K, not k: k moves up in every list, and a scroll key must never drop a decision.
        Binding("K", "skip", "Skip", id="debug.skip"),
        # One key, two bindings: the footer shows whichever applies now (check_action hides the other).
        Binding("p", "pause", "Pause", id="debug.pause"),
        Binding("p", "resume", "Resume", id="debug.resume"),
        Binding("b", "breakpoint", "Break", id="debug.breakpoint"),
        # The breakpoints panel (Debug tab): add with conditions, enable/disable and delete the selected one.
        Binding("B", "add_breakpoint", "Add bp", id="debug.add_breakpoint"),
        Binding("e", "toggle_breakpoint_enabled", "On/off", id="debug.toggle_breakpoint"),
        Binding("d", "delete_breakpoint", "Delete", id="debug.delete_breakpoint"),
        Binding("a", "answer", "Answer", id="inbox.answer"),
        Binding("r", "reject", "Reject", id="inbox.reject"),
        Binding("i", "inject", "Review", id="action.inject"),
        Binding("t", "terminate", "Terminate", id="action.terminate"),
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
    ) -> None:
        self.config = config or TuiConfig()
        super().__init__()
        self.instance = instance
        self.model = LiveModel(instance, max_log_lines=self.config.max_log_lines)
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
        self._payloads = PayloadCache(self.config.max_payload_chars)
        self._stale: set[str] = set(PANES)
        self._last_clock = -1
        self._rows_drawn_at = -1
        self._drained = 0
        # "Why not moving" from the debug plane (live attach only): claim id -> reasons, for the selection.
        self._explained: dict[str, list[str]] = {}
        self._explained_for: str | None = None
        self._explain_wanted = False
        self._explain_running = False
        if not self.config.animations:
            self.animation_level = "none"

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
                    yield TextLines(id="inspector-view")
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
                    yield TextLines(id="held")
                    yield Static("Breakpoints", id="breakpoints-title")
                    yield BreakpointsList(id="breakpoints")
                    yield Static("Actions (this session)", id="actions-title")
                    yield TextLines(id="action-log")
        yield PromptBar(id="prompt")
        yield Footer()

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
        if self.recorder is not None:
            self.recorder.write(item)

    def drain(self) -> None:
        """Apply everything that arrived since the last tick as one batch of keyed changes."""
        if not self.is_running:
            # Shutting down: Textual prunes the screens before it stops the app's timers.
            return
        now_s = self.config.clock_ms() // 1000
        if not self.feed:
            if now_s != self._last_clock:
                self._last_clock = now_s
                self._render_status()
            return
        items: list[FeedItem] = []
        pop = self.feed.popleft
        for _ in range(min(len(self.feed), 50_000)):
            items.append(pop())
        self._drained += len(items)
        if self.recorder is not None:
            self.recorder.flush()
        was_loading = self.model.loading
        change = self.model.apply_all(items)
        with self.batch_update():
            self.apply_change(change)
        if was_loading and not self.model.loading:
            # The loaded model is long-lived: keep the collector from re-scanning it on every full collection
            # (at 100k artefacts a full collection would otherwise stall a key press by 100+ ms).
            gc.freeze()

    def apply_change(self, change: Change) -> None:
        graph = self._main.query_one(ArtefactGraph)
        if change.artefacts or change.claims or change.debug:
            had_rows = bool(graph.items)
            # Ages in rows tick, so drawn rows are dropped at least every 10 s; otherwise only on claim changes.
            minute = self.config.clock_ms() // 10_000
            graph.reload(invalidate=change.claims or change.debug or minute != self._rows_drawn_at)
            self._rows_drawn_at = minute
            if change.new_artefacts:
                if self.following:
                    self._follow_key = change.new_artefacts[-1]
                    graph.select_key(self._follow_key)
                else:
                    self.new_count += len(change.new_artefacts)
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
        self._render_status()
        if change.debug or change.inbox:
            self.refresh_bindings()

    # ------------------------------------------------------------------------------------------ drawing

    @property
    def selected_artefact(self) -> str | None:
        return self._main.query_one(ArtefactGraph).artefact_id

    def _active_pane(self) -> str:
        return self._main.query_one(TabbedContent).active or "inspector"

    def _refresh_active_pane(self, *, keep_scroll: bool) -> None:
        pane = self._active_pane()
        if pane not in self._stale:
            return
        self._stale.discard(pane)
        now, tz = self.config.clock_ms(), self.config.tz
        match pane:
            case "inspector":
                selected = self.selected_artefact
                explained = None
                if self._live_explain:
                    explained = self._explained if self._explained_for == selected else {}
                lines = inspector_lines(self.model, selected, self._payloads, now, tz, explained)
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
        t = Text("holt-tui ", style="bold")
        t.append(f"│ {s(self.instance, 40)} ", style="bold")
        t.append(f"│ {glyph} {m.connection} ", style=style)
        mode, mode_style = self._mode_text()
        t.append("│ ")
        t.append(mode, style=mode_style)
        orch = "orchestrator up" if m.info.orchestrator_alive else "orchestrator down"
        if not self.replay:
            t.append(f" │ {orch}", style="" if m.info.orchestrator_alive else "red")
        t.append(f" │ {m.workflow_count()} wf · {len(m.artefacts):,} artefacts · {m.open_claims()} open claims")
        if m.loading and m.connection not in ("replay", "ended"):
            t.append(f" │ loading {len(m.artefacts):,}/{max(m.total_hint, len(m.artefacts)):,}", style="yellow")
        held = len(m.debug.held)
        if held:
            t.append(f" │ ⏸ {held} held", style="bold red")
        if m.skipped:
            t.append(f" │ ⚠ {len(m.skipped)} unreadable", style="yellow")
        waiting = sum(1 for i in m.inbox.items if i.status == "open")
        if waiting:
            t.append(f" │ ✉ {waiting} waiting", style="bold yellow")
        now = self.config.clock_ms()
        t.append(f" │ {s(self.config.host, 30)} {clock(now, self.config.tz)}", style="dim")
        self._main.query_one("#header", Static).update(t)
        notice = self._main.query_one("#notice", Static)
        text = ""
        if m.connection == "lost":
            text = f"✗ connection to Redis lost ({s(m.connection_detail, 80)}): reconnecting, then resyncing..."
        elif m.resync_notice:
            text = f"⟳ {m.resync_notice}  (x dismisses)"
        notice.update(text)
        notice.display = bool(text)
        status = Text(f"follow: {'on' if self.following else 'off'}", style="bold green" if self.following else "")
        if self.new_count and not self.following:
            status.append(f" │ {self.new_count} new (f follows)", style="bold yellow")
        graph = self._main.query_one(ArtefactGraph)
        if graph.filter.is_active:
            status.append(f" │ filter: {s(graph.filter.source, 40)} ({len(graph.items)} rows)", style="cyan")
        self._main.query_one("#graph-status", Static).update(status)

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
                          f"{len(d.breakpoints)} breakpoints")
        held = d.held[0] if d.held else None
        self._main.query_one("#held", TextLines).show(held_lines(held, self.config.clock_ms()))
        self._main.query_one(BreakpointsList).set_items(list(d.breakpoints))
        log = self.action_log or [Text("actions you take in this session appear here, with their result",
                                       style="dim italic")]
        view = self._main.query_one("#action-log", TextLines)
        view.show(log, keep_scroll=True)  # every action of the session; the newest stays in view
        view.scroll_end(animate=False, immediate=True)

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
            self._selection_changed()
        elif message.list_id == "breakpoints":
            self.refresh_bindings()
        elif message.list_id == "inbox-list":
            self._render_inbox_detail()
            self.refresh_bindings()

    _follow_key: str | None = None

    def _selection_changed(self) -> None:
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
        return not self.replay and "explain" in self.sources.debug.capabilities()

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
                reasons: dict[str, list[str]] = {}
                for claim_id in claims:
                    try:
                        reasons[claim_id] = await self.sources.debug.explain(claim_id)
                    except (HoltError, RedisError, OSError) as err:
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
            if binding.id in seen:
                continue
            seen.add(binding.id or binding.key)
            action = binding.action.split("(")[0]
            enabled = self.check_action(action, ()) is True
            rows.append((binding.key.replace("question_mark", "?").replace("colon", ":").replace("slash", "/"),
                         binding.description, enabled))
        rows += [("j/k ↑/↓", "Move in a list", True), ("g/G home/end", "First / last row", True),
                 ("ctrl+f/ctrl+b", "Page down / up", True), ("tab", "Next panel", True),
                 ("ctrl+p", "Command palette: every action", True)]
        self.push_screen(HelpScreen(rows))

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
            self._selection_changed()
        self._render_status()

    def action_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self.new_count = 0
            newest = self.model.newest_artefact()
            if newest is not None:
                self._follow_key = newest
                self._main.query_one(ArtefactGraph).select_key(newest)
        self._render_status()

    def action_dismiss_notice(self) -> None:
        self.model.dismiss_resync()
        self._render_status()

    def action_show_pane(self, pane: str) -> None:
        self._main.query_one(TabbedContent).active = pane
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
        if head == "panel" and rest in PANES:
            self.action_show_pane(rest)
            return
        command = find_command(head)
        if command is None:
            self.notify(f"unknown command {s(head, 40)!r}: ? lists them", severity="error")
            return
        self.call_later(self.run_action, command.action)

    # ------------------------------------------------------------------------------------------ control

    def command_available(self, c: Command) -> bool:
        return self.check_action(c.action.split("(")[0], ()) is True

    def _held(self) -> HeldDecision | None:
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
        need = CONTROL.get(action)
        if need is None:
            return True
        if need == "inbox":
            supported = self.model.inbox.supported
        else:
            supported = need in self.sources.debug.capabilities()
        if not supported:
            return False  # hidden: this instance cannot do it at all
        match action:  # hidden where they do not apply
            case "add_breakpoint" | "toggle_breakpoint_enabled" | "delete_breakpoint":
                if self._active_pane() != "debugger":
                    return False
                if action != "add_breakpoint" and self._selected_breakpoint() is None:
                    return False
            case "pause" if self.model.debug.full_control:
                return False
            case "resume" if not self.model.debug.full_control:
                return False
        if self.read_only:
            return None  # shown, disabled: it exists, but this session may not act
        match action:
            case "step" | "continue_decision" | "skip":
                return True if self._held() is not None else None
            case "breakpoint" | "inject":
                return True if self.selected_artefact is not None else None
            case "terminate":
                return True if self._open_claim_of_selected() is not None else None
            case "answer" | "reject":
                item = self._inbox_item()
                if item is None or (action == "reject" and item.kind != "approval"):
                    return None
                return True
        return True

    def _call(self, name: str, call: Awaitable[ActionResult]) -> None:
        async def run() -> None:
            try:
                result = await call
            except HoltError as err:
                result = ActionResult(False, err.message)
            self.post_message(ActionDone(name, result.ok, result.message))

        self.run_worker(run(), group="actions", exit_on_error=False)

    def action_step(self) -> None:
        held = self._held()
        if held is not None:
            self._call(f"step {_held_label(held)}", self.sources.debug.step(held.id))

    def action_continue_decision(self) -> None:
        held = self._held()
        if held is not None:
            self._call(f"continue {_held_label(held)}", self.sources.debug.continue_(held.id))

    def action_skip(self) -> None:
        held = self._held()
        if held is None:
            return

        def done(text: str | None) -> None:
            if text is not None:
                self._call(f"skip {_held_label(held)}", self.sources.debug.skip(held.id))

        self.push_screen(ActionDialog(f"Skip the held decision: {s(held.would, 80)}?",
                                      "The claim stays as it is; nothing is carried out."), done)

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

        def added(form: BreakpointForm | None) -> None:
            if form is not None:
                self._call(f"add breakpoint {s(form.type_glob, 40)}",
                           self.sources.debug.add_breakpoint(form.type_glob, form.conditions, form.action))

        self.push_screen(BreakpointDialog(glob), added)

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

        def confirmed(text: str | None) -> None:
            if text is not None:
                self._call(f"delete breakpoint {s(bp.id, 20)}", self.sources.debug.delete_breakpoint(bp.id))

        self.push_screen(ActionDialog(f"Delete breakpoint {s(bp.id, 20)} on {s(bp.type_glob, 40)}?",
                                      "Decisions it already holds stay held."), confirmed)

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
            def answered(text: str | None) -> None:
                if text:
                    self._call(f"answer {item.id[:8]}", self.sources.inbox.answer(item.id, text))

            self.push_screen(ActionDialog(f"Answer: {s(item.title, 80)}", "", "Your answer:"), answered)
        else:
            def approved(text: str | None) -> None:
                if text is not None:
                    self._call(f"approve {item.id[:8]}", self.sources.inbox.approve(item.id, text))

            self.push_screen(ActionDialog(f"Approve: {s(item.title, 80)}", f"risk {s(item.risk, 10)}",
                                          "Justification" + (" (required):" if item.needs_justification else ":")),
                             approved)

    def action_reject(self) -> None:
        item = self._inbox_item()
        if item is None:
            return

        def rejected(text: str | None) -> None:
            if text:
                self._call(f"reject {item.id[:8]}", self.sources.inbox.reject(item.id, text))

        self.push_screen(ActionDialog(f"Reject: {s(item.title, 80)}", "", "Reason (passed back to the agent):"),
                         rejected)

    def action_inject(self) -> None:
        a = self.selected_artefact
        if a is None or a not in self.model.artefacts:
            return
        art = self.model.artefacts[a]

        def injected(text: str | None) -> None:
            if text is not None:
                self._call(f"review {a[:8]}", self.sources.debug.inject_review(a, text.strip() or "{}"))

        self.push_screen(ActionDialog(f"Inject a review on {s(art.type, 40)} v{art.version} ({a[:8]})",
                                      "Empty (or {}) approves; any other text is feedback and starts rework.",
                                      "Review payload:"), injected)

    def action_terminate(self) -> None:
        claim = self._open_claim_of_selected()
        if claim is None:
            return

        def terminated(text: str | None) -> None:
            if text:
                self._call(f"terminate {claim[:8]}", self.sources.debug.terminate(claim, text))

        self.push_screen(ActionDialog(f"Terminate claim {claim[:8]}?", "The claim ends; agents are not granted it.",
                                      "Reason:"), terminated)

    async def _take_lease(self) -> None:
        self.lease = await self.sources.debug.acquire_lease()
        if not self.is_running:
            return
        self._render_status()
        self.refresh_bindings()


def _held_label(held: HeldDecision) -> str:
    return f"{s(held.kind, 30)} {(held.claim_id or held.artefact_id)[:8]}"


def pane_widgets(app: HoltTui) -> dict[str, Widget]:
    return {pane: app.query_one(f"#{pane}") for pane in PANES}


__all__ = ["COMMANDS", "HoltTui"]
