"""Console output shared by every command: results to stdout, errors as one coloured line on stderr.

rich is imported on the first coloured line, not before: a read command that prints plain lines (``out``)
and meets no error never loads it (about a tenth of such a command's start, docs/performance.md).
``stdout`` and ``stderr`` are the rich consoles, made on first use.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Any

from holt_core.errors import HoltError
from holt_core.sanitise import sanitise_text

if TYPE_CHECKING:
    from rich.console import Console

    stdout: Console
    stderr: Console


@functools.cache
def _console(name: str) -> Console:
    from rich.console import Console

    if name == "stdout":
        return Console(highlight=False, soft_wrap=True)
    return Console(stderr=True, highlight=False, soft_wrap=True, no_color="NO_COLOR" in os.environ)


def __getattr__(name: str) -> Any:
    if name in ("stdout", "stderr"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def out(line: str) -> None:
    """One line of a result, as it is (what ``stdout.out(line, highlight=False)`` writes, without rich)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def print_error(err: HoltError) -> None:
    # Messages can quote ids, keys and payload fragments from Redis: never let an escape sequence through.
    stderr = _console("stderr")
    stderr.print(f"[bold red]error:[/] {_escape(sanitise_text(err.message))}")
    for line in err.details:
        stderr.print(f"  {_escape(sanitise_text(line))}")
    if err.hint:
        stderr.print(f"[dim]hint: {_escape(sanitise_text(err.hint))}[/]")


def warn(message: str) -> None:
    _console("stderr").print(f"[yellow]warning:[/] {_escape(sanitise_text(message))}")


def success(message: str) -> None:
    _console("stdout").print(f"[green]✓[/] {_escape(message)}")
