"""Modal prompts for control actions: every action asks first, and text actions take their text here."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, TextArea


class ActionDialog(ModalScreen[str | None]):
    """Asks to confirm ``title``; with ``text_label`` also takes text. Returns the text ("" if none) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("ctrl+s", "confirm", "Confirm", id="dialog.confirm"),
    ]
    DEFAULT_CSS = """
    ActionDialog { align: center middle; }
    ActionDialog > Vertical { width: 80%; max-width: 90; height: auto; border: thick $warning; background: $panel;
                              padding: 1 2; }
    ActionDialog TextArea { height: 8; }
    ActionDialog Horizontal { height: auto; margin-top: 1; }
    ActionDialog Button { margin-right: 2; }
    """

    def __init__(self, title: str, detail: str = "", text_label: str | None = None, initial: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.detail = detail
        self.text_label = text_label
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, markup=False)
            if self.detail:
                yield Label(self.detail, markup=False)
            if self.text_label is not None:
                yield Label(self.text_label, markup=False)
                yield TextArea(self.initial, id="dialog-text")
            with Horizontal():
                yield Button("Confirm (ctrl+s)", variant="warning", id="confirm")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        if self.text_label is not None:
            self.query_one(TextArea).focus()
        else:
            self.query_one("#confirm", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        text = self.query_one(TextArea).text if self.text_label is not None else ""
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
