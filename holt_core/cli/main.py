"""Entry point of ``holt``: a table of commands, each module imported only when one of its commands runs.

``holt --version`` and ``holt --help`` import nothing beyond this module; ``holt questions`` imports the
HITL command module and what it uses, never the orchestrator or Textual. Each command module exposes
``register(app)``, which adds its commands to a Typer app; the table below says which module owns which
top-level command (tests/test_cli_dispatch.py checks the two agree).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from holt_core import __version__

if TYPE_CHECKING:
    import typer

_UP = "holt_core.cli.up_cmd"
_COMPONENTS = "holt_core.cli.component_cmds"
_READ = "holt_core.cli.read_cmds"
_HITL = "holt_core.cli.hitl_cmds"

# command -> (module that registers it, one line of help). Order is the order of `holt --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("holt_core.cli.demo_cmd", "Set up and run the demo workflow with holt-tui attached (--headless: no UI)."),
    "init": ("holt_core.cli.init_cmd", "Write holt.yml and an example agent into this git repository."),
    "up": (_UP, "Start an instance: the orchestrator and one agent process per role."),
    "down": (_UP, "Stop an instance (its blackboard stays in Redis)."),
    "list": ("holt_core.cli.list_cmd", "List instances and their state."),
    "forage": ("holt_core.cli.forage_cmd", "Start a workflow with a goal."),
    "logs": ("holt_core.cli.logs_cmd", "Show the logs of a component (orchestrator or a role)."),
    "hoard": (_READ, "List the artefacts, or show one."),
    "unearth": (_READ, "Print an artefact's payload."),
    "watch": ("holt_core.cli.watch_cmd", "Follow live events."),
    "questions": (_HITL, "Open questions waiting for a person."),
    "answer": (_HITL, "Answer a question."),
    "pending": (_HITL, "Open approval requests."),
    "approve": (_HITL, "Approve a request."),
    "reject": (_HITL, "Reject a request with a reason."),
    "status": (_HITL, "One request in full, with its history."),
    "debug": ("holt_core.cli.debug_cmds", "Breakpoints, held decisions, stepping and manual actions."),
    "explain": ("holt_core.cli.debug_cmds", "Why is a claim or artefact not moving?"),
    "audit": ("holt_core.cli.audit_cmds", "The audit trail: verify and export."),
    "destroy": ("holt_core.cli.destroy_cmd", "Archive and delete an instance."),
    "operator": ("holt_core.cli.operator_cmds", "Operators: add, list and revoke (their tokens authenticate people)."),
    "acl": ("holt_core.cli.operator_cmds", "Print or apply the Redis ACL users for an external Redis."),
    "health": ("holt_core.cli.ops_cmds", "Every component of an instance with its health and endpoints."),
    "report": ("holt_core.cli.ops_cmds", "HITL figures from the audit trail: approval times, expiries, escalations."),
    "redis": ("holt_core.cli.redis_cmd", "Show and control the Redis that holds the blackboard."),
    "orchestrator": (_COMPONENTS, "Run the orchestrator of an instance (started by holt up)."),
    "pup": (_COMPONENTS, "Run the agent process of one role (started by holt up)."),
}
# Components holt up starts itself: kept out of the help listing.
_HIDDEN = frozenset({"orchestrator", "pup"})
_DESCRIPTION = "Holt: a blackboard orchestrator for AI agents, with humans in the loop."


def help_text() -> str:
    width = max(len(name) for name in COMMANDS) + 2
    lines = ["Usage: holt [OPTIONS] COMMAND [ARGS]...", "", f"  {_DESCRIPTION}", "", "Options:",
             f"  {'--version':<{width}}Print the version and exit.",
             f"  {'--help':<{width}}Show this message and exit.", "", "Commands:"]
    lines += [f"  {name:<{width}}{text}" for name, (_, text) in COMMANDS.items() if name not in _HIDDEN]
    lines += ["", "Run 'holt COMMAND --help' for the options of a command."]
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    first = args[0] if args else "--help"
    if first in ("--help", "-h"):
        print(help_text())
        return
    if first == "--version":
        print(f"holt version {__version__}")
        return
    entry = COMMANDS.get(first)
    if entry is None:
        print(f"Usage: holt [OPTIONS] COMMAND [ARGS]...\nTry 'holt --help' for help.\n\nError: No such command "
              f"'{first}'.", file=sys.stderr)
        sys.exit(2)
    try:
        app = _app_for(entry[0], first)
        from holt_core.cli.common import run_typer_app
    except KeyboardInterrupt:  # Ctrl-C while the command's modules load: nothing has started, nothing to undo
        sys.exit(130)

    run_typer_app(app, args)


def _app_for(module_name: str, command: str) -> typer.Typer:
    """A Typer app with ``command`` from its module (imported now, and only it): the module's other commands are
    not built (Typer inspects each registered command's signature when it runs one)."""
    import typer

    app = typer.Typer(name="holt", help=_DESCRIPTION, pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _root() -> None:
        """Holt: a blackboard orchestrator for AI agents, with humans in the loop."""

    importlib.import_module(module_name).register(app)
    app.registered_commands = [c for c in app.registered_commands if c.name == command]
    app.registered_groups = [g for g in app.registered_groups if g.name == command]
    return app


if __name__ == "__main__":
    run()
