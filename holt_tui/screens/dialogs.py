"""Modal prompts for control actions: every action asks first, and text actions take their text here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, TextArea

from holt_core.errors import HoltError
from holt_tui.breakpoint_form import BreakpointForm, parse_conditions
from holt_tui.sources import ActionResult

Submit = Callable[[str], Awaitable[ActionResult]]


class ActionDialog(ModalScreen[str | None]):
    """Asks to confirm ``title``; with ``text_label`` also takes text. Returns the text ("" if none) or None.

    ``required``: the refusal shown when the text is empty (the dialog stays open). ``submit``: carries the
    action out from the dialog; a refusal is shown in the dialog, wrapped, and the input stays for a retry.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("ctrl+s", "confirm", "Confirm", id="dialog.confirm"),
    ]
    DEFAULT_CSS = """
    ActionDialog { align: center middle; }
    ActionDialog > Vertical { width: 90%; max-width: 100; height: auto; max-height: 100%; border: thick $warning;
                              background: $panel; padding: 0 1; }
    ActionDialog Label { width: 1fr; }
    ActionDialog TextArea { height: 6; }
    ActionDialog #dialog-error { color: $error; text-style: bold; display: none; }
    ActionDialog Horizontal { height: auto; margin-top: 1; }
    ActionDialog Button { margin-right: 2; }
    """

    def __init__(self, title: str, detail: str = "", text_label: str | None = None, initial: str = "", *,
                 required: str | None = None, submit: Submit | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.detail = detail
        self.text_label = text_label
        self.initial = initial
        self.required = required
        self.submit = submit
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, markup=False)
            if self.detail:
                yield Label(self.detail, markup=False)
            if self.text_label is not None:
                yield Label(self.text_label, markup=False)
                yield TextArea(self.initial, id="dialog-text")
            yield Label("", id="dialog-error", markup=False)
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

    def show_error(self, text: str) -> None:
        error = self.query_one("#dialog-error", Label)
        error.update(text)
        error.display = bool(text)

    @property
    def error_text(self) -> str:
        return str(self.query_one("#dialog-error", Label).content)

    def action_confirm(self) -> None:
        if self._busy:
            return
        text = self.query_one(TextArea).text if self.text_label is not None else ""
        if self.required is not None and not text.strip():
            self.show_error(self.required)
            return
        if self.submit is None:
            self.dismiss(text)
            return
        self._busy = True
        self.show_error("")
        self.run_worker(self._submit(text), group="dialog", exit_on_error=False)

    async def _submit(self, text: str) -> None:
        assert self.submit is not None
        try:
            result = await self.submit(text)
        finally:
            self._busy = False
        if result.ok:
            self.dismiss(text)
        else:
            self.show_error(f"refused: {result.message} (edit and confirm again, or esc)")

    def action_cancel(self) -> None:
        self.dismiss(None)


class BreakpointDialog(ModalScreen[BreakpointForm | None]):
    """Add a breakpoint: a type glob, conditions (``role=Drafter kind=grant_review``) and hold or stop."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("ctrl+s", "confirm", "Confirm", id="dialog.confirm"),
    ]
    DEFAULT_CSS = """
    BreakpointDialog { align: center middle; }
    BreakpointDialog > Vertical { width: 80%; max-width: 90; height: auto; border: thick $warning;
                                  background: $panel; padding: 1 2; }
    BreakpointDialog Horizontal { height: auto; margin-top: 1; }
    BreakpointDialog Button { margin-right: 2; }
    BreakpointDialog Label { width: 1fr; }
    BreakpointDialog #bp-error { color: $error; }
    """

    def __init__(self, type_glob: str = "*", submit: Callable[[BreakpointForm], Awaitable[ActionResult]] | None = None
                 ) -> None:
        super().__init__()
        self.type_glob = type_glob
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a breakpoint", markup=False)
            yield Label("Artefact type (Go glob, * for any):", markup=False)
            yield Input(self.type_glob, id="bp-type")
            yield Label("Conditions, name=value separated by spaces (role, granted, status, kind, structural, "
                        "hit), e.g. kind=grant_review granted=Formatter hit='>=2':", markup=False)
            yield Input("", id="bp-conditions")
            yield Checkbox("stop: put the whole instance under full control when it hits", id="bp-stop")
            yield Label("", id="bp-error", markup=False)
            with Horizontal():
                yield Button("Add (ctrl+s)", variant="warning", id="confirm")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#bp-type", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        try:
            conditions = parse_conditions(self.query_one("#bp-conditions", Input).value)
        except HoltError as err:
            self.query_one("#bp-error", Label).update(err.message)
            return
        glob = self.query_one("#bp-type", Input).value.strip() or "*"
        action = "stop" if self.query_one("#bp-stop", Checkbox).value else "hold"
        form = BreakpointForm(glob, conditions, action)
        if self.submit is None:
            self.dismiss(form)
        else:
            self.run_worker(self._submit(form), group="dialog", exit_on_error=False)

    async def _submit(self, form: BreakpointForm) -> None:
        assert self.submit is not None
        result = await self.submit(form)
        if result.ok:
            self.dismiss(form)
        else:
            self.query_one("#bp-error", Label).update(f"refused: {result.message}")

    def action_cancel(self) -> None:
        self.dismiss(None)
