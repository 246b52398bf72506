"""Every action of the TUI, by name: the command palette (ctrl+p) and the ``:`` command line share this table."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider


class _CommandHost(Protocol):
    """What the palette needs of the app (holt_tui.app.HoltTui), without importing it."""

    def command_available(self, command: Command) -> bool: ...


@dataclass(frozen=True)
class Command:
    name: str  # what ``:`` accepts (aliases after the first)
    action: str  # the app action it runs (with its arguments, as Textual action text)
    help: str
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command("help", "help", "Show every key and the filter syntax", ("?", "h")),
    Command("quit", "quit", "Leave holt-tui", ("q", "exit")),
    Command("follow", "follow", "Toggle following new artefacts", ("tail",)),
    Command("filter", "filter", "Filter the focused list (/)"),
    Command("clear-filter", "clear_filter", "Show every row of the focused list again"),
    Command("dismiss", "dismiss_notice", "Dismiss the resynced notice", ("x",)),
    Command("inspector", "show_pane('inspector')", "Show the inspector (1)"),
    Command("graph", "show_pane('neighbourhood')", "Show the selected artefact's neighbourhood (2)",
            ("neighbourhood",)),
    Command("agents", "show_pane('agents')", "Show the agents (3)"),
    Command("events", "show_pane('events')", "Show the event log (4)", ("log",)),
    Command("audit", "show_pane('audit')", "Show the audit tail (5)"),
    Command("inbox", "show_pane('inbox')", "Show questions and approvals (6)"),
    Command("debugger", "show_pane('debugger')", "Show held decisions and breakpoints (7)", ("debug",)),
    Command("actions", "show_pane('debugger')", "Show the log of this session's actions (Debug tab)",
            ("action-log",)),
    Command("step", "step", "Carry out the selected held decision and hold the next (s)", ("s",)),
    Command("continue", "continue_decision", "Carry out the selected held decision and run on (c)", ("c",)),
    Command("skip", "skip", "Drop the selected held decision; the claim stays as it is (K)"),
    Command("to-terminal", "run_to_terminal", "Run the selected held decision's workflow to its Terminal; the others "
            "stay held (u)", ("until", "u")),
    Command("fold", "fold", "Fold / unfold the selected workflow's artefacts (Enter or z on the artefact list)",
            ("z", "unfold")),
    Command("pause", "pause", "Enter full control: every decision waits (p)"),
    Command("resume", "resume", "Leave full control (p)"),
    Command("break", "breakpoint", "Toggle a breakpoint on the selected artefact's type (b)", ("b",)),
    Command("break-add", "add_breakpoint", "Add a breakpoint with a type glob and conditions (B, Debug tab)"),
    Command("break-toggle", "toggle_breakpoint_enabled", "Enable or disable the selected breakpoint (e)"),
    Command("break-delete", "delete_breakpoint", "Delete the selected breakpoint (d)"),
    Command("answer", "answer", "Answer the question / approve the request selected in the inbox (a)",
            ("approve",)),
    Command("reject", "reject", "Reject the approval request selected in the inbox (r)"),
    Command("inject", "inject", "Inject a review on the selected artefact (i)", ("review",)),
    Command("terminate", "terminate", "Terminate the selected artefact's open claim (t)"),
    Command("history", "history", "History mode: the blackboard as it was, change by change (h)"),
    Command("live", "leave_history", "Leave history mode: back to the present (h, esc)"),
    Command("back", "history_back", "History mode: one change back ([)"),
    Command("forward", "history_forward", "History mode: one change forward (])"),
    Command("first-change", "history_start", "History mode: the first change ({)"),
    Command("last-change", "history_end", "History mode: the last change (})"),
    Command("next-match", "search_next", "Go to the next match of the search (n)", ("n", "next")),
    Command("previous-match", "search_previous", "Go to the previous match of the search (N)", ("prev",)),
    Command("copy-id", "copy_id", "Copy the selected id to the clipboard (y)", ("y",)),
    Command("copy-payload", "copy_payload", "Copy the selected payload to the clipboard (Y)"),
    Command("pager", "open_pager", "Open the selected payload in $PAGER (o)", ("o",)),
    Command("save", "save_payload", "Save the selected payload to a file (w)", ("w",)),
)


def find_command(word: str) -> Command | None:
    word = word.lower()
    for c in COMMANDS:
        if word == c.name or word in c.aliases:
            return c
    return None


class ActionsProvider(Provider):
    """Offers the actions that work now (context-aware: disabled ones are left out)."""

    def _available(self) -> list[Command]:
        app = cast(_CommandHost, self.app)
        return [c for c in COMMANDS if app.command_available(c)]

    async def discover(self) -> Hits:
        for c in self._available():
            yield DiscoveryHit(c.name, partial(self.app.run_action, c.action), help=c.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for c in self._available():
            score = matcher.match(f"{c.name} {c.help}")
            if score > 0:
                yield Hit(score, matcher.highlight(c.name), partial(self.app.run_action, c.action), help=c.help)
