"""``holt destroy``: delete an instance's blackboard for good, after archiving its audit trail."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from holt_core.cli.common import AsOpt, open_blackboard, run_async
from holt_core.cli.output import stdout, success, warn
from holt_core.destroy import DestroyReport, destroy_instance
from holt_core.errors import InvalidInput
from holt_core.identity import resolve_operator


def register(app: typer.Typer) -> None:
    app.command("destroy")(destroy)


def destroy(
    name: Annotated[str, typer.Argument(help="Instance to destroy (always named explicitly).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    audit_file: Annotated[
        Path | None,
        typer.Option("--audit-file", help="Where to archive the audit trail (default: ./holt-audit-NAME-TIME.jsonl)."),
    ] = None,
    as_: AsOpt = None,
) -> None:
    """Archive the audit trail to a file, then delete every key of a stopped instance."""
    operator = resolve_operator(as_)
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("destroy deletes everything of the instance", hint="confirm with --yes")
        typed = typer.prompt(f"This deletes every artefact, claim and record of '{name}'. Type its name to confirm")
        if typed.strip() != name:
            raise InvalidInput("confirmation did not match; nothing was deleted")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = audit_file or Path.cwd() / f"holt-audit-{name}-{stamp}.jsonl"
    report = run_async(_destroy(name, operator, target))
    if not report.audit_intact:
        warn(f"the audit trail was already broken before destroy: {report.audit_problem}")
    stdout.print(f"  Audit trail: {report.audit_records} records archived to {report.audit_file}")
    success(f"Instance '{report.instance}' destroyed ({report.keys_deleted} keys deleted)")


async def _destroy(name: str, operator: str, target: Path) -> DestroyReport:
    async with open_blackboard(name, client_name="holt-destroy") as bb:

        def progress(done: int) -> None:
            if done and sys.stderr.isatty():
                print(f"\r  deleted {done} keys", end="", file=sys.stderr, flush=True)

        report = await destroy_instance(bb.redis, bb.instance, operator=operator, audit_file=target, progress=progress)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        return report
