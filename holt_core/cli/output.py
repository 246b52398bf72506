"""Console output shared by every command: results to stdout, errors as one coloured line on stderr."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape

from holt_core.errors import HoltError
from holt_core.sanitise import sanitise_text

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, no_color="NO_COLOR" in os.environ)


def print_error(err: HoltError) -> None:
    # Messages can quote ids, keys and payload fragments from Redis: never let an escape sequence through.
    stderr.print(f"[bold red]error:[/] {escape(sanitise_text(err.message))}")
    for line in err.details:
        stderr.print(f"  {escape(sanitise_text(line))}")
    if err.hint:
        stderr.print(f"[dim]hint: {escape(sanitise_text(err.hint))}[/]")


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(sanitise_text(message))}")


def success(message: str) -> None:
    stdout.print(f"[green]✓[/] {escape(message)}")
