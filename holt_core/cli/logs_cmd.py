"""``holt logs``: a component's log, from the registry's log dir or this workspace's ``.holt/logs``."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from holt_core.cli.common import NameOpt, run_async
from holt_core.cli.instance_common import quiet_stdout_errors, redis_connection, resolve_here, tail_lines
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import InvalidInput, NotFound, RedisUnavailable
from holt_core.instances import get_record, workspace_root
from holt_core.keys import validate_instance_name
from holt_core.sanitise import sanitise_text
from holt_core.supervisor import component_log, log_dir_for

_FOLLOW_POLL_S = 0.25
_COMPONENT = re.compile(r"^[A-Za-z0-9-]+$")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    app.command("logs")(logs)


def logs(
    component: Annotated[
        str, typer.Argument(metavar="COMPONENT", help="orchestrator, supervisor, or an agent role.")
    ],
    name: NameOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", min=0, help="How many lines from the end to show.")] = 50,
) -> None:
    """Show a component's log."""
    if not _COMPONENT.match(component):
        raise InvalidInput(f"invalid component '{component}'", hint="orchestrator, supervisor, or an agent role")
    log_dir = run_async(_find_log_dir(name))
    path = component_log(log_dir, component)
    if not path.is_file():
        known = sorted(p.stem for p in log_dir.glob("*.log"))
        raise NotFound(
            f"no log for '{component}' in {log_dir}",
            details=[f"available: {', '.join(known)}"] if known else [],
            hint="components are orchestrator, supervisor and the agent roles in holt.yml",
        )
    tty = sys.stdout.isatty()
    with quiet_stdout_errors(), path.open("rb") as f:
        shown, offset = tail_lines(f, lines)
        for line in shown:
            typer.echo(sanitise_text(line) if tty else line)
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                _follow(path, f, offset, tty)


async def _find_log_dir(name: str | None) -> Path:
    """The registered log dir; else ``.holt/logs/<name>`` here (logs outlive ``holt down``)."""
    if name is not None:
        validate_instance_name(name)
    root = workspace_root()
    try:
        url = resolve_redis_url(start=False)
        async with redis_connection(url, read_only=True) as redis:
            instance = await resolve_here(redis, name)
            record = await get_record(redis, instance)
        if record is not None and record.log_dir:
            return Path(record.log_dir)
        return log_dir_for(root, instance)
    except (NotFound, InvalidInput, RedisUnavailable):
        if name is not None:
            return log_dir_for(root, name)
        here = [p for p in (root / ".holt" / "logs").glob("*") if p.is_dir()]
        if len(here) == 1:
            return here[0]
        raise

def _follow(path: Path, f: BinaryIO, offset: int, tty: bool) -> None:
    """Print what is appended to ``path`` after ``offset`` until interrupted; starts over if it is replaced."""
    with contextlib.ExitStack() as stack:
        f.seek(offset)
        pending = b""
        while True:
            chunk = f.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace")
                    typer.echo(sanitise_text(line) if tty else line)
                continue
            time.sleep(_FOLLOW_POLL_S)
            try:
                current = path.stat()
            except OSError:
                continue
            if current.st_ino != os.fstat(f.fileno()).st_ino or current.st_size < f.tell():
                f = stack.enter_context(path.open("rb"))  # replaced or truncated: read it from the start
                pending = b""
