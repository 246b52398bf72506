"""Entry point of ``holt``. Subcommand groups live in their own modules and register here."""

from __future__ import annotations

import typer

from holt_core import __version__
from holt_core.cli import audit_cmds, debug_cmds, demo_cmd, destroy_cmd, hitl_cmds, lifecycle_cmds, read_cmds, redis_cmd
from holt_core.cli.common import run_typer_app

app = typer.Typer(
    name="holt",
    help="Holt: a blackboard orchestrator for AI agents, with humans in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(redis_cmd.app, name="redis")
lifecycle_cmds.register(app)
read_cmds.register(app)
audit_cmds.register(app)
destroy_cmd.register(app)
hitl_cmds.register(app)
debug_cmds.register(app)
demo_cmd.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"holt version {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Holt: a blackboard orchestrator for AI agents, with humans in the loop."""


def run() -> None:
    run_typer_app(app)


if __name__ == "__main__":
    run()
