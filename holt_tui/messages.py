"""Every message the TUI's widgets post, in one place (small typed classes)."""

from __future__ import annotations

from textual.message import Message


class RowSelected(Message):
    """The cursor of a list moved to another row."""

    def __init__(self, list_id: str, key: str | None) -> None:
        super().__init__()
        self.list_id = list_id
        self.key = key


class PromptSubmitted(Message):
    """The ``/`` filter or ``:`` command line was submitted (``mode`` is "filter" or "command")."""

    def __init__(self, mode: str, text: str, target: str | None) -> None:
        super().__init__()
        self.mode = mode
        self.text = text
        self.target = target


class PromptCancelled(Message):
    def __init__(self, mode: str, target: str | None) -> None:
        super().__init__()
        self.mode = mode
        self.target = target


class ActionDone(Message):
    """A control action (step, answer, inject, ...) finished; ``ok`` false when refused."""

    def __init__(self, action: str, ok: bool, message: str) -> None:
        super().__init__()
        self.action = action
        self.ok = ok
        self.message = message


class Explained(Message):
    """The debug plane's "why is this not moving" for the open claims of ``artefact_id`` (a worker asked)."""

    def __init__(self, artefact_id: str, reasons: dict[str, list[str]]) -> None:
        super().__init__()
        self.artefact_id = artefact_id
        self.reasons = reasons


class LinkFollowed(Message):
    """Enter on a line that names an artefact (the Inspector's links)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
