"""The one-line prompt at the bottom: ``/`` filters the focused list, ``:`` runs a command."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import Input

from holt_tui.messages import PromptCancelled, PromptSubmitted


class PromptBar(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.mode = "filter"
        self.target: str | None = None

    def open(self, mode: str, target: str | None, value: str = "") -> None:
        self.mode = mode
        self.target = target
        self.placeholder = (
            "filter: type:Glob agent:Role kind:Review id:1a2b since:10m word !word" if mode == "filter"
            else "command: help, quit, follow, goto <id>, panel <name>, filter ..., export dot|mermaid FILE")
        self.value = value
        self.display = True
        self.focus()
        self.cursor_position = len(value)

    def close(self) -> None:
        self.display = False

    async def action_submit(self) -> None:
        self.post_message(PromptSubmitted(self.mode, self.value, self.target))
        self.close()

    def action_cancel(self) -> None:
        self.post_message(PromptCancelled(self.mode, self.target))
        self.close()

    def on_blur(self, event: events.Blur) -> None:
        self.close()
