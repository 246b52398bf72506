"""Operations commands: ``holt health`` (every component's /healthz) and ``holt report`` (HITL success figures)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

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
from holt_core.models import now_ms
from holt_core.report import HitlReport, check_since, load_report
from holt_core.sanitise import sanitise_text
from holt_core.supervisor import read_state

ENV_UP_HEALTH_TIMEOUT_S = "HOLT_UP_HEALTH_TIMEOUT_S"
UP_HEALTH_TIMEOUT_S = 30.0


def register(app: typer.Typer) -> None:
    app.command("health")(health)
    app.command("report")(report)


def health(name: NameOpt = None, json_out: JsonOpt = False) -> None:
    """Every component of an instance with its health and the base URL of /healthz, /readyz and /metrics."""
    rows = run_async(_health(name))
    if not rows and not json_out:
        raise HoltError("no component of this instance serves a health endpoint (is it running?)",
                        hint="holt up starts it; holt list shows the instances")
    if json_out:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("COMPONENT", "STATE", "URL", "DETAIL"):
            table.add_column(column)
        replicated = {r.component for r in rows if sum(o.component == r.component for o in rows) > 1}
        for r in rows:
            state = "[green]healthy[/]" if r.healthy else "[red]unhealthy[/]"
            # Replicas of one role each get a row, named by their replica (host:pid, or HOLT_REPLICA).
            shown = f"{r.component} ({r.replica})" if r.component in replicated and r.replica else r.component
            table.add_row(escape(sanitise_text(shown)), state, escape(r.url or "-"), escape(sanitise_text(r.detail)))
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
                names = ", ".join(dict.fromkeys(r.component for r in bad))
                raise HoltError(
                    f"instance '{instance}' failed to start: {names} {'is' if len(bad) == 1 else 'are'} "
                    f"not healthy after {timeout_s:g} s",
                    details=[f"{r.component}: {r.detail}" for r in bad])
            await asyncio.sleep(0.25)
    finally:
        await redis.aclose()


# ---------------------------------------------------------------------------------------------
# report


def report(
    name: NameOpt = None,
    since: Annotated[str, typer.Option("--since", help="The period: 7d, 2w, 36h or an RFC 3339 time.")] = "7d",
    json_out: JsonOpt = False,
) -> None:
    """The human-in-the-loop success figures of the requests created in a period, from the audit trail."""
    now = now_ms()
    start = check_since(since, now)
    instance, result = run_async(_report(name, start, now))
    if json_out:
        typer.echo(json.dumps({"instance": instance, **result.model_dump(mode="json")}, indent=2))
        return
    for line in render_report(instance, since, result):
        stdout.print(line, markup=False)


async def _report(name: str | None, start: int, now: int) -> tuple[str, HitlReport]:
    async with open_blackboard(name, client_name="holt-report") as bb:
        return bb.instance, await load_report(bb, start, now)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / whole:.0%})" if whole else "none"


def render_report(instance: str, since: str, r: HitlReport) -> list[str]:
    start = datetime.fromtimestamp(r.since_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"HITL report for instance '{instance}': requests created since {start} ({since})", "",
             f"Approvals: {r.approvals_requested} requested ({r.approvals_auto_approved} approved automatically)"]
    if r.approval_time_by_risk:
        lines.append("  Time to decision by risk level:")
        for t in r.approval_time_by_risk:
            lines.append(f"    {t.risk or '-':<10} {t.decided:>4} decided   p50 {_duration(t.p50_s):>8}   "
                         f"p95 {_duration(t.p95_s):>8}")
    lines.append(f"  Decided before the deadline: {_share(r.gates_decided_before_deadline, r.gates_closed)}")
    lines.append(f"  Bypasses: {_share(r.bypasses, r.decisions)} of decisions; "
                 f"{r.post_reviews_open} post-review(s) still open")
    levels = ", ".join(f"level {k}: {v}" for k, v in r.escalations_by_level.items()) or "none"
    lines.append(f"Escalations: {levels}")
    expiries = ", ".join(f"{k}: {v}" for k, v in r.expiries.items()) or "none"
    lines.append(f"Expiries: {expiries}")
    lines.append(f"Questions: {r.questions_asked} asked; answered by peers {r.questions_answered_by_peers}, "
                 f"by people {r.questions_answered_by_people}, by the default on expiry "
                 f"{r.questions_answered_by_default}; {r.questions_escalated_to_people} moved from agents to people; "
                 f"{r.questions_open} open")
    return lines
