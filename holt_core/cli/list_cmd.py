"""``holt list``: the registered instances and their state. Reads the registry and, for a running instance,
its supervisor's state file; imports neither the engine nor the supervisor until a running instance needs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from holt_core.cli.common import run_async
from holt_core.cli.instance_common import redis_connection
from holt_core.cli.output import warn
from holt_core.embedded_redis import env_redis_url, known_redis_url, resolve_redis_url
from holt_core.errors import RedisUnavailable
from holt_core.instances import InstanceRecord, list_records, supervisor_alive
from holt_core.sanitise import sanitise_text


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    app.command("list")(list_instances)


def list_instances(
    as_json: Annotated[bool, typer.Option("--json", "-j", help="Print a JSON array.")] = False,
) -> None:
    """List the registered instances. Running means every component is up and connected; otherwise the
    status says which one is not and why, e.g. ``degraded (orchestrator restarting: connection refused)``."""
    rows = run_async(_list_rows())
    if as_json:
        typer.echo(json_dumps(rows))
        return
    if not rows:
        typer.echo("No Holt instances found.")
        return
    width = max(10, *(len(r["status"]) for r in rows))
    row = f"{{:<15}} {{:<{width}}} {{:<30}} {{}}"
    typer.echo(row.format("INSTANCE", "STATUS", "WORKSPACE", "UPTIME"))
    for r in rows:
        typer.echo(row.format(r["name"], r["status"], _short_path(r["workspace"]), r["uptime"]))


def json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


async def _list_rows() -> list[dict[str, str]]:
    try:
        url = resolve_redis_url(start=False)
    except RedisUnavailable:
        if env_redis_url() is not None:
            raise
        if known_redis_url() is not None:
            warn("holt's Redis is not running, so the registry cannot be read: holt redis start")
        return []  # holt's private Redis is not running, so no instance can be
    async with redis_connection(url, read_only=True) as redis:
        records = await list_records(redis)
    rows = []
    for r in records:
        running = supervisor_alive(r.supervisor_pid)
        rows.append({
            "name": r.name,
            "status": _instance_status(r) if running else "Stopped",
            "workspace": r.workspace_path,
            "uptime": format_uptime(r.started_at) if running else "-",
            "api_url": r.api_url if running else "",  # the approvals API (docs/api.md)
        })
    return rows


def _instance_status(record: InstanceRecord) -> str:
    """What the supervisor's state file says of its components (``Running`` only if all are well)."""
    from holt_core.supervisor import describe, read_state  # only for a running instance

    state = read_state(Path(record.log_dir)) if record.log_dir else None
    if state is None or state.supervisor_pid != record.supervisor_pid:
        return "unknown (no state file)"
    return sanitise_text(describe(state))


def _short_path(path: str) -> str:
    return path if len(path) <= 30 else "..." + path[-27:]


def format_uptime(started_at: str, now: datetime | None = None) -> str:
    try:
        start = datetime.fromisoformat(started_at)
    except ValueError:
        return "-"
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    seconds = max(int(((now or datetime.now(UTC)) - start).total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
