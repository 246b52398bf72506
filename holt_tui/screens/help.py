"""``?``: every key, what it does now, and the filter syntax."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from holt_tui.widgets.views import TextLines

FILTER_HELP = [
    "Filter (/ in any list, same syntax everywhere; every term must match):",
    "  type:Glob      artefact type (or event/action name), Go glob: type:Recipe*",
    "  agent:Role     producing role / agent / operator (exact)   alias role:",
    "  kind:Review    structural type, event kind, agent health",
    "  id:1a2b        id prefix (artefact, thread, claim)",
    "  since:10m until:2026-01-01T10:00:00Z   time bounds, as holt watch",
    "  word  !word    the line contains / does not contain the word",
    "Esc clears the prompt; an empty filter shows everything.",
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90%; max-width: 100; height: 90%; border: round $accent; background: $panel; }
    HelpScreen Static { height: 1; background: $accent; color: $text; text-style: bold; padding: 0 1; }
    HelpScreen TextLines { height: 1fr; }
    """

    def __init__(self, rows: list[tuple[str, str, bool]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("holt-tui help  (Esc closes)")
            yield TextLines(id="help-text")

    def on_mount(self) -> None:
        lines: list[Text] = [Text("Keys (dim: not available right now)", style="bold")]
        for key, description, enabled in self.rows:
            t = Text(f"  {key:<16}", style="bold cyan" if enabled else "dim")
            t.append(description, style="" if enabled else "dim")
            lines.append(t)
        lines.append(Text(""))
        lines.extend(Text(line) for line in FILTER_HELP)
        lines.append(Text(""))
        lines.append(Text("ctrl+p opens the command palette with every action; : runs one by name "
                          "(e.g. :goto 1a2b3c, :panel events, :filter type:Review)."))
        view = self.query_one(TextLines)
        view.show(lines)
        view.focus()
