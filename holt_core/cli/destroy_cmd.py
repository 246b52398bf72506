"""``holt destroy --name NAME [--force] [--dry-run]``: delete an instance for good, after archiving it (M4.3).

The old form ``holt destroy NAME --yes`` stays as an alias.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from holt_core.cli.common import AsOpt, connection_failed, redis_client, run_async
from holt_core.cli.output import stderr, stdout, success, warn
from holt_core.destroy import (
    DestroyPlan,
    DestroyReport,
    InstanceNotFound,
    InstanceRunning,
    destroy_instance,
    log_destruction,
    plan_destroy,
    running_reason,
)
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import InvalidInput
from holt_core.identity import resolve_operator
from holt_core.instances import get_record
from holt_core.keys import validate_instance_name


def register(app: typer.Typer) -> None:
    app.command("destroy")(destroy)


def _fail(*lines: str) -> typer.Exit:
    for line in lines:
        stderr.print(line, markup=False)
    return typer.Exit(1)


def destroy(
    name_arg: Annotated[str | None, typer.Argument(metavar="[NAME]", help="Old form of --name.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Instance to destroy (always named).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not ask for confirmation (for scripts).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Alias of --force.", hidden=True)] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; delete nothing.")] = False,
    audit_file: Annotated[
        Path | None,
        typer.Option("--archive", "--audit-file",
                     help="Where to archive the audit trail and artefacts (default: ./holt-archive-NAME-TIME.jsonl)."),
    ] = None,
    as_: AsOpt = None,
) -> None:
    """Archive the audit trail and every artefact to a file, then delete every key of a stopped instance."""
    if name and name_arg and name != name_arg:
        raise InvalidInput("two different instance names given", hint="use --name NAME only")
    instance = name or name_arg
    if not instance:
        raise InvalidInput("no instance named", hint="holt destroy --name <instance>")
    validate_instance_name(instance)
    operator = resolve_operator(as_)
    plan = run_async(_check(instance))
    if dry_run:
        _print_plan(plan)
        return
    if not (force or yes):
        stdout.print(f"WARNING: This will permanently delete ALL data for instance '{instance}'", markup=False)
        stdout.print("This includes:\n  - All artefacts and claims\n  - All thread history\n  - All metadata",
                     markup=False)
        stdout.print("Type the instance name to confirm: ", end="", markup=False)
        typed = sys.stdin.readline() if not sys.stdin.closed else ""
        if typed.strip() != instance:
            stdout.print()
            raise _fail("Error: Confirmation did not match - nothing was deleted")
        stdout.print(f"Destroying instance '{instance}'...", markup=False)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = (audit_file or Path.cwd() / f"holt-archive-{instance}-{stamp}.jsonl").resolve()
    report = run_async(_destroy(instance, operator, target))
    if not report.audit_intact:
        warn(f"the audit trail was already broken before destroy: {report.audit_problem}")
    archived = (f"Archived {report.audit_records:,} audit records and {report.artefacts_archived:,} artefacts "
                f"to {report.archive_file}")
    if force or yes:
        stderr.print(archived, markup=False)  # stdout stays the one line M4.3 shows for scripts
    else:
        stdout.print(archived, markup=False)
        success(f"Removed {len(plan.artefacts):,} artefacts")
        success(f"Removed {len(plan.claims):,} claims")
        success(f"Removed {len(plan.threads):,} threads")
        success("Removed metadata")
    stdout.print(f"Instance '{instance}' destroyed successfully", markup=False)


def _print_plan(plan: DestroyPlan) -> None:
    stdout.print(f"Dry run: nothing will be deleted. Destroying instance '{plan.instance}' would remove:",
                 markup=False)
    stdout.print(f"  {len(plan.artefacts):,} artefacts", markup=False)
    stdout.print(f"  {len(plan.claims):,} claims", markup=False)
    stdout.print(f"  {len(plan.threads):,} threads", markup=False)
    stdout.print(f"  metadata ({len(plan.metadata):,} keys)", markup=False)
    if plan.registered:
        stdout.print("  its entry in holt:instances", markup=False)
    stdout.print("Keys:", markup=False)
    for key in plan.keys:
        stdout.print(f"  {key}", markup=False)


async def _check(instance: str) -> DestroyPlan:
    """The plan, or M4.3's errors for an instance that is running or does not exist."""
    async with _redis() as redis:
        try:
            plan = await plan_destroy(redis, instance)
        except InstanceNotFound:
            raise _fail(f"Error: Instance '{instance}' not found") from None
        if await running_reason(redis, instance) is not None:
            raise _fail(f"Error: Cannot destroy instance '{instance}' - instance is still running",
                        f"Run 'holt down --name {instance}' first")
        return plan


async def _destroy(instance: str, operator: str, target: Path) -> DestroyReport:
    async with _redis() as redis:
        record = await get_record(redis, instance)

        def progress(done: int) -> None:
            if done and sys.stderr.isatty():
                print(f"\r  deleted {done} keys", end="", file=sys.stderr, flush=True)

        try:
            report = await destroy_instance(redis, instance, operator=operator, archive_file=target,
                                            progress=progress)
        except InstanceRunning:
            raise _fail(f"Error: Cannot destroy instance '{instance}' - instance is still running",
                        f"Run 'holt down --name {instance}' first") from None
        except InstanceNotFound:
            raise _fail(f"Error: Instance '{instance}' not found") from None
        if sys.stderr.isatty():
            print(file=sys.stderr)
        log_destruction(record, report, operator, target.parent)
        return report


@contextlib.asynccontextmanager
async def _redis() -> AsyncIterator[Redis]:
    redis = redis_client(resolve_redis_url(start=False), client_name="holt-destroy")
    try:
        yield redis
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise connection_failed(exc) from None
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
