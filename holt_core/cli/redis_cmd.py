"""``holt redis status|start|stop``: show and control the private Redis (or report the external one)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from redis.exceptions import RedisError
from rich.markup import escape

from holt_core.cli.common import redis_client, run_async
from holt_core.cli.output import stdout, success, warn
from holt_core.embedded_redis import EmbeddedRedis, ServerStatus, env_redis_url, redis_status
from holt_core.errors import HoltError, RedisUnavailable
from holt_core.instances import InstanceRecord, live_records
from holt_core.sanitise import sanitise_text

app = typer.Typer(help="Show and control the Redis that holds the blackboard.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="redis")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """Show which Redis holt uses and whether it answers. Exits 1 if it does not."""
    current = redis_status()
    if as_json:
        # typer.echo, not rich: the JSON must reach stdout byte for byte.
        typer.echo(json.dumps(_as_json(current), indent=2))
    else:
        _print_status(current)
    if not current.running:
        if current.source == "env":
            warn("the server named by HOLT_REDIS_URL does not answer")
        else:
            warn("Redis is not running; start it with `holt redis start`")
        raise typer.Exit(1)


@app.command()
def start() -> None:
    """Start holt's private Redis, or reuse the one already running."""
    if env_redis_url() is not None:
        external = redis_status()
        if not external.running:
            raise RedisUnavailable(
                f"HOLT_REDIS_URL is set but {external.display_url} does not answer",
                hint="check that server, or unset HOLT_REDIS_URL to use holt's private Redis",
            )
        success(f"using the external Redis at {external.display_url} (HOLT_REDIS_URL); nothing started")
        return
    server = EmbeddedRedis()
    before = server.status()
    after = server.start()
    reused = before.running and before.pid == after.pid
    verb = "already running" if reused else "started"
    success(f"Redis {after.version} {verb} at {after.display_url} (pid {after.pid}, data in {after.data_dir})")
    if after.moved_from_port is not None:
        warn(f"port {after.moved_from_port} is taken by another program, so Redis now listens on port {after.port}; "
             "running instances restart their components on the new port by themselves")


@app.command()
def stop(
    force: Annotated[
        bool, typer.Option("--force", help="Stop even while instances run on it (they reconnect when it is back).")
    ] = False,
) -> None:
    """Stop holt's private Redis (its data stays on disk). Refuses while instances run on it, unless --force."""
    if env_redis_url() is not None:
        raise HoltError(
            "HOLT_REDIS_URL is set: holt does not stop an external server",
            hint="unset HOLT_REDIS_URL to stop holt's private Redis",
        )
    server = EmbeddedRedis()
    before = server.status()
    if before.running and before.url is not None:
        running = run_async(_running_instances(before.url))
        if running and not force:
            raise HoltError(
                f"{len(running)} instance(s) run on this Redis: "
                + ", ".join(sanitise_text(r.name) for r in running),
                details=[f"{sanitise_text(r.name)}: {sanitise_text(r.workspace_path)} (supervisor pid "
                         f"{r.supervisor_pid})" for r in running],
                hint="holt down stops an instance; --force stops Redis anyway (the instances wait and reconnect "
                     "when it is started again)",
            )
        for record in running:
            warn(f"instance '{sanitise_text(record.name)}' keeps running and reconnects once Redis is back "
                 "(holt redis start)")
    if server.stop():
        success(f"stopped Redis (pid {before.pid})" if before.pid is not None else "stopped Redis")
    else:
        stdout.print(f"no Redis was running for {escape(str(server.data_dir))}")


async def _running_instances(url: str) -> list[InstanceRecord]:
    redis = redis_client(url, client_name="holt-redis-stop")
    try:
        return await live_records(redis)
    except (RedisError, OSError):
        return []  # it does not answer: there is nothing on it to protect
    finally:
        await redis.aclose()


def _as_json(current: ServerStatus) -> dict[str, object]:
    return {
        "source": current.source,
        "running": current.running,
        "url": current.display_url,  # never the password
        "pid": current.pid,
        "port": current.port,
        "version": current.version,
        "binary": current.binary,
        "data_dir": str(current.data_dir) if current.data_dir is not None else None,
        "log_file": str(current.log_file) if current.log_file is not None else None,
    }


def _print_status(current: ServerStatus) -> None:
    rows = [
        ("source", current.source),
        ("running", "yes" if current.running else "no"),
        ("url", current.display_url),
        ("pid", current.pid),
        ("port", current.port),
        ("version", current.version),
        ("binary", current.binary),
        ("data dir", current.data_dir),
        ("log file", current.log_file),
    ]
    for label, value in rows:
        shown = "-" if value is None else str(value)
        stdout.print(f"{label + ':':<10} {escape(shown)}")
