"""``holt redis status|start|stop`` (filled in with the embedded Redis module)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Show and control the Redis that holds the blackboard.", no_args_is_help=True)
