"""Operations commands: ``holt health`` (every component's /healthz) and ``holt report`` (HITL success figures)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import typer
from redis.asyncio import Redis
from rich.markup import escape
from rich.table import Table

from holt_core.blackboard import connect_redis
from holt_core.cli.common import JsonOpt, NameOpt, open_blackboard, run_async
from holt_core.cli.output import stdout
from holt_core.errors import HoltError
from holt_core.health import ComponentHealth, probe_components
from holt_core.instances import get_record
from holt_core.sanitise import sanitise_text
from holt_core.supervisor import read_state

ENV_UP_HEALTH_TIMEOUT_S = "HOLT_UP_HEALTH_TIMEOUT_S"
UP_HEALTH_TIMEOUT_S = 30.0


def register(app: typer.Typer) -> None:
    app.command("health")(health)


def health(name: NameOpt = None, json_out: JsonOpt = False) -> None:
    """Every component of an instance with its health and the base URL of /healthz, /readyz and /metrics."""
    rows = run_async(_health(name))
    if json_out:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("COMPONENT", "STATE", "URL", "DETAIL"):
            table.add_column(column)
        for r in rows:
            state = "[green]healthy[/]" if r.healthy else "[red]unhealthy[/]"
            table.add_row(escape(r.component), state, escape(r.url or "-"), escape(sanitise_text(r.detail)))
        stdout.print(table)
    if not rows or not all(r.healthy for r in rows):
        raise typer.Exit(1)


async def _health(name: str | None) -> list[ComponentHealth]:
    async with open_blackboard(name, client_name="holt-health") as bb:
        return await probe_components(bb.redis, bb.instance, await expected_components(bb.redis, bb.instance))


async def expected_components(redis: Redis, instance: str) -> list[str]:
    """The components the instance's supervisor runs (from its state file), if it is known on this host."""
    record = await get_record(redis, instance)
    if record is None or not record.log_dir:
        return []
    state = read_state(Path(record.log_dir))
    return list(state.components) if state is not None else []


async def wait_healthy(redis_url: str, instance: str, components: list[str], timeout_s: float) -> None:
    """Until every component answers /healthz with 200; else an error naming the ones that do not."""
    redis = connect_redis(redis_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await probe_components(redis, instance, components)
            bad = [r for r in rows if not r.healthy]
            if not bad:
                return
            if time.monotonic() > deadline:
                names = ", ".join(r.component for r in bad)
                raise HoltError(
                    f"instance '{instance}' failed to start: {names} {'is' if len(bad) == 1 else 'are'} "
                    f"not healthy after {timeout_s:g} s",
                    details=[f"{r.component}: {r.detail}" for r in bad])
            await asyncio.sleep(0.25)
    finally:
        await redis.aclose()
