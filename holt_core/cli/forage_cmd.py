"""``holt forage``: post a goal on the blackboard of a running instance, and optionally follow its workflow."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from holt_core import lock
from holt_core.blackboard import Blackboard, next_message
from holt_core.cli.common import AsOpt, NameOpt, run_async
from holt_core.cli.instance_common import quiet_stdout_errors, redis_connection, resolve_here
from holt_core.cli.output import stdout, success, warn
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import HoltError, InvalidInput, MalformedRecord
from holt_core.identity import resolve_operator
from holt_core.instances import get_record, workspace_root
from holt_core.keys import Keys
from holt_core.models import Artefact, StructuralType, new_id, now_ms
from holt_core.render import ArtefactItem, live_item, watch_lines
from holt_core.sanitise import sanitise_text

_RUNNING_CHECK_S = 5.0


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``holt`` app."""
    app.command("forage")(forage)


def forage(
    goal: Annotated[str, typer.Option("--goal", "-g", help="The goal for the agents (a GoalDefined artefact).")],
    name: NameOpt = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Stream the workflow until it produces a Terminal artefact.")
    ] = False,
    operator: AsOpt = None,
) -> None:
    """Post a goal on the blackboard of a running instance."""
    if not goal.strip():
        raise InvalidInput("required flag --goal not provided", hint='holt forage --goal "what you want done"')
    root = workspace_root()
    require_clean_workspace(root)
    url = resolve_redis_url(start=False)
    starter = resolve_operator(operator)  # recorded: who starts a workflow may not approve its gates
    with quiet_stdout_errors():
        run_async(_forage(url, name, goal, watch, starter))


def require_clean_workspace(root: Path) -> None:
    """Agents work from the committed state; uncommitted changes would be invisible or overwritten."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as exc:
        raise HoltError("cannot read git status", details=[str(exc)]) from None
    changed: list[str] = []
    untracked: list[str] = []
    for line in out.splitlines():
        path = line[3:]
        if not line.strip() or path.strip('"').startswith(".holt/"):
            continue  # holt's own logs
        (untracked if line.startswith("??") else changed).append(line)
    if not changed and not untracked:
        return
    details: list[str] = []
    if changed:
        details += ["Uncommitted changes:", *(f" {sanitise_text(line)}" for line in changed)]
    if untracked:
        details += ["Untracked files:", *(f" {sanitise_text(line)}" for line in untracked)]
    raise HoltError(
        "Git workspace is not clean",
        details=details,
        hint="commit or stash your changes first (git add -A && git commit), so agents start from a known state",
    )


async def _forage(url: str, name: str | None, goal: str, watch: bool, starter: str) -> None:
    from holt_core.hitl.requests import post_goal  # a write: it loads the audit trail

    async with redis_connection(url) as redis:
        instance = await resolve_here(redis, name)
        if not await redis.exists(Keys(instance).lock):
            if await get_record(redis, instance) is not None:
                raise HoltError(f"instance '{instance}' is not running", hint="start it with holt up")
            # Not started by this holt (Go's orchestrator never writes the lock): its state is unknown.
            warn(f"cannot tell whether instance '{instance}' has a running orchestrator")
        bb = Blackboard(redis, instance)
        ident = new_id()
        artefact = Artefact(id=ident, logical_id=new_id(), version=1, structural_type=StructuralType.STANDARD,
                            type="GoalDefined", payload=goal, source_artefacts=[], produced_by_role="user")
        if not watch:
            created = await post_goal(bb, artefact, starter)
            success(f"Goal artefact created: {created.id}")
            stdout.print("  Follow it with: holt watch   (or holt hoard to list the artefacts)")
            return
        channels = (bb.keys.artefact_events, bb.keys.claim_events, bb.keys.workflow_events)
        # Subscribed (and confirmed) before the goal exists, so not one event of its workflow is missed.
        async with bb.subscribe(*channels) as sub:
            created = await post_goal(bb, artefact, starter)
            success(f"Goal artefact created: {created.id}")
            await _watch_goal(bb, sub, created.id)


async def _watch_goal(bb: Blackboard, sub: Any, goal_id: str) -> None:
    """Print every event until a Terminal artefact descended from ``goal_id`` arrives."""
    tz = datetime.now().astimezone().tzinfo or UTC
    lineage = {goal_id}  # artefacts derived from our goal: other goals' Terminals must not end the watch
    last_check = time.monotonic()
    while True:
        message = await next_message(sub, 1.0)
        if message is None:
            if time.monotonic() - last_check >= _RUNNING_CHECK_S:
                last_check = time.monotonic()
                if not await lock.is_running(bb.redis, bb.keys):
                    raise HoltError(f"instance '{bb.instance}' stopped before the workflow completed")
            continue
        channel, data = message
        try:
            item = live_item(bb.keys, channel, data, now_ms())
        except MalformedRecord as bad:
            warn(f"Failed to parse event on {sanitise_text(channel)}: {sanitise_text(bad.reason)}")
            continue
        for line in watch_lines(item, output="default", tz=tz, now_ms=now_ms()):
            typer.echo(line)
        if isinstance(item, ArtefactItem):
            art = item.artefact
            if art.id in lineage or any(source in lineage for source in art.source_artefacts):
                lineage.add(art.id)
                if art.structural_type is StructuralType.TERMINAL:
                    return
