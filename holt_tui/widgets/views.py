"""The concrete lists of the TUI, all ``LineList``s over data the app hands them from the model."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from holt_core.audit import AuditRecord
from holt_tui.display import (
    age,
    agent_line,
    audit_line,
    breakpoint_line,
    event_line,
    graph_row,
    held_row,
    highlight_search,
    inbox_line,
    link_of,
)
from holt_tui.filtering import ListFilter, Subject
from holt_tui.messages import LinkFollowed
from holt_tui.model import AgentRow, LiveModel, LogLine, Row
from holt_tui.sources import Breakpoint, HeldDecision, InboxItem
from holt_tui.widgets.lines import LineList


class ArtefactGraph(LineList):
    """Workflows -> threads -> versions, with "derived from" marks; the model filters and orders the rows."""

    empty_text = "no artefacts yet: start a workflow with holt forage"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,z", "fold", "Fold", show=False, id="graph.fold"),
    ]

    def __init__(self, model: LiveModel, now_ms: Any, tz: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self._now_ms = now_ms
        self._tz = tz

    def item_key(self, item: Row) -> str:
        return item[1] if item[0] == "a" else "w:" + item[1]

    def item_cache_key(self, item: Row) -> str:
        if item[0] == "a":
            # With its age: the clock's tick repaints only the rows whose age reads differently.
            a = self.model.artefacts.get(item[1])
            return f"{item[1]} {age(a.created_at_ms, self._now_ms()) if a is not None else ''}"
        # A workflow header shows its size and status: a new member or a new state must redraw it.
        return (f"w:{item[1]}:{self.model.workflow_size(item[1])}:{self.model.workflow_status(item[1])}"
                f":{item[1] in self.model.collapsed}")

    def item_text(self, item: Row, selected: bool) -> Text:
        t = graph_row(self.model, item, self._now_ms(), self._tz)
        words = self.filter.words
        if words and item[0] == "a":
            highlight_search(t, words, self.model.artefacts[item[1]].payload)
        return t

    def content_width(self) -> int:
        return max(self.size.width, 120)

    def _index_of(self, key: str) -> int | None:
        # Rows are tuples: list.index finds one in C (a Python loop over 100k rows stalled following).
        items = self.items
        candidates = [("w", key[2:], 0)] if key.startswith("w:") else [("a", key, 1), ("a", key, 2)]
        if isinstance(items, list):
            for row in candidates:
                try:
                    return items.index(row)
                except ValueError:
                    continue
            return None
        return super()._index_of(key)

    def set_filter(self, f: ListFilter) -> None:
        self.filter = f
        self.model.set_filter(f)
        self.reload()

    def reload(self, *, invalidate: bool = True) -> None:
        self.set_items(self.model.rows(), filtered=True, invalidate=invalidate)

    @property
    def artefact_id(self) -> str | None:
        item = self.current_item
        return item[1] if item is not None else None

    def action_fold(self) -> None:
        """Fold / unfold the workflow of the selected row; the cursor stays on (or goes to) its header."""
        item = self.current_item
        if item is None:
            return
        root = item[1] if item[0] == "w" else self.model.root_of(item[1])
        self.model.set_collapsed(root, root not in self.model.collapsed)
        self.reload()
        self.select_key("w:" + root)


class TextLines(LineList):
    """Read-only scrollable text (inspector, neighbourhood); no cursor, only the visible lines render."""

    has_cursor = False
    empty_text = ""

    def item_key(self, item: Text) -> str:
        return item.plain

    def item_cache_key(self, item: Text) -> str:
        # The whole look of the line: a line that reads and looks the same keeps its strip (and is not repainted)
        # when the next selection's lines are shown.
        return repr((item.plain, item.style, item.spans, item.justify, item.overflow, item.end))

    def item_text(self, item: Text, selected: bool) -> Text:
        return item.copy()

    def content_width(self) -> int:
        widest = max((t.cell_len for t in self.items[:2000]), default=0)
        return max(self.size.width, widest)

    def show(self, lines: list[Text], *, keep_scroll: bool = False) -> None:
        """Show these lines; only the lines on screen that read or look different are repainted."""
        self.items = lines
        self._set_virtual_size(self.virtual_size.__class__(self.content_width(), len(lines)))
        if not keep_scroll:
            self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh_changed()


class InspectorLines(TextLines):
    """The Inspector: text with a cursor; Enter on a line that names an artefact jumps to it."""

    has_cursor = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "follow_link", "Jump", id="inspector.jump"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "follow_link":
            return self.current_item is not None and link_of(self.current_item) is not None
        return True

    def action_follow_link(self) -> None:
        item = self.current_item
        target = link_of(item) if item is not None else None
        if target is not None:
            self.post_message(LinkFollowed(target))

    def show(self, lines: list[Text], *, keep_scroll: bool = False) -> None:
        if not keep_scroll:
            self.cursor = 0
        self.cursor = min(self.cursor, max(len(lines) - 1, 0))
        super().show(lines, keep_scroll=keep_scroll)


class TailList(LineList):
    """A list that follows its newest row while the cursor sits on the last one."""

    def __init__(self, tz: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tz = tz
        self.tail = True

    def set_items(self, items: Any, *, filtered: bool = False, invalidate: bool = True) -> None:
        at_end = self.cursor >= len(self.items) - 1
        super().set_items(items, filtered=filtered, invalidate=invalidate)
        if self.tail and at_end and self.items:
            self.cursor = len(self.items) - 1
            self.scroll_end(animate=False, immediate=True)


class EventLog(TailList):
    empty_text = "no events yet"

    def item_key(self, item: LogLine) -> str:
        return f"{id(item)}"

    def item_text(self, item: LogLine, selected: bool) -> Text:
        return event_line(item, self._tz)

    def item_subject(self, item: LogLine) -> Subject:
        return item.subject


class AuditTail(TailList):
    empty_text = "no audit records yet"

    def item_key(self, item: AuditRecord) -> str:
        return str(item.seq)

    def item_text(self, item: AuditRecord, selected: bool) -> Text:
        return audit_line(item, self._tz)

    def item_subject(self, item: AuditRecord) -> Subject:
        return Subject(text=audit_line(item, self._tz).plain, type=item.action, agent=item.operator,
                       kind=item.action, ids=(item.subject,), ts_ms=item.ts_ms)


class AgentsList(LineList):
    empty_text = "no agents known yet"

    def __init__(self, now_ms: Any, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._now_ms = now_ms

    def item_key(self, item: AgentRow) -> str:
        return item.name

    def item_text(self, item: AgentRow, selected: bool) -> Text:
        return agent_line(item, self._now_ms())

    def item_subject(self, item: AgentRow) -> Subject:
        return Subject(text=agent_line(item, self._now_ms()).plain, agent=item.name, kind=item.health,
                       ids=(item.claim_id,) if item.claim_id else (), ts_ms=item.last_activity_ms)


class InboxList(LineList):
    empty_text = "no questions or approvals waiting"

    def __init__(self, now_ms: Any, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._now_ms = now_ms

    def item_key(self, item: InboxItem) -> str:
        return item.id

    def item_text(self, item: InboxItem, selected: bool) -> Text:
        return inbox_line(item, self._now_ms())

    def item_subject(self, item: InboxItem) -> Subject:
        return Subject(text=inbox_line(item, self._now_ms()).plain, type=item.kind, agent=item.requester,
                       kind=item.kind, ids=(item.id, item.claim_id, item.artefact_id), ts_ms=item.created_ms)


class BreakpointsList(LineList):
    empty_text = "no breakpoints (b on an artefact adds one on its type, B adds one with conditions)"
    # Also bound on the app (Debug tab); bound here too so that, with the list focused, the footer shows
    # them first instead of cutting them off at its end. The app's check_action decides when they apply.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("B", "app.add_breakpoint", "Add bp", id="breakpoints.add"),
        Binding("e", "app.toggle_breakpoint_enabled", "On/off", id="breakpoints.toggle"),
        Binding("d", "app.delete_breakpoint", "Delete", id="breakpoints.delete"),
    ]

    def item_key(self, item: Breakpoint) -> str:
        return item.id

    def item_text(self, item: Breakpoint, selected: bool) -> Text:
        return breakpoint_line(item)

    def item_subject(self, item: Breakpoint) -> Subject:
        return Subject(text=breakpoint_line(item).plain, type=item.type_glob, kind=item.action, ids=(item.id,))


class HeldList(LineList):
    """Every held decision, oldest first; s/c/K act on the selected one."""

    empty_text = "no decision is held"

    def __init__(self, model: LiveModel, now_ms: Any, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self._now_ms = now_ms

    def item_key(self, item: HeldDecision) -> str:
        return item.id

    def item_cache_key(self, item: HeldDecision) -> str:
        return f"{item.id}:{item.released}:{age(item.held_since_ms, self._now_ms())}"  # the age ticks

    def item_text(self, item: HeldDecision, selected: bool) -> Text:
        return held_row(self.model, item, self._now_ms())

    def item_subject(self, item: HeldDecision) -> Subject:
        return Subject(text=held_row(self.model, item, self._now_ms()).plain, type=item.kind, agent=item.role,
                       kind=item.kind, ids=(item.id, item.claim_id, item.artefact_id), ts_ms=item.held_since_ms)
