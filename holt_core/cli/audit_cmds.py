"""``holt audit``: read, follow, verify and export the tamper-evident audit trail."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from holt_core.audit import AuditRecord
from holt_core.cli.common import JsonOpt, NameOpt, open_blackboard, run_async
from holt_core.cli.output import stdout, success
from holt_core.errors import HoltError, InvalidInput
from holt_core.sanitise import sanitise_text

app = typer.Typer(help="The audit trail: every human act and decision, hash-chained.", no_args_is_help=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit")


def _line(record: AuditRecord) -> str:
    when = datetime.fromtimestamp(record.ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    details = json.dumps(record.details, sort_keys=True, ensure_ascii=False)
    return sanitise_text(f"#{record.seq} {when} {record.operator} {record.action} {record.subject} {details}")


def _json(record: AuditRecord) -> str:
    return json.dumps(record.model_dump(), sort_keys=True, ensure_ascii=False)


@app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    name: NameOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new records.")] = False,
    last: Annotated[int | None, typer.Option("--last", help="Only the newest N records.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the audit trail, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    if last is not None and last < 1:
        raise InvalidInput("--last must be at least 1")
    run_async(_show(name, follow, last, as_json))


async def _show(name: str | None, follow: bool, last: int | None, as_json: bool) -> None:
    async with open_blackboard(name, client_name="holt-audit") as bb:
        for record in await bb.audit.records(last=last):
            stdout.out(_json(record) if as_json else _line(record), highlight=False)
        if follow:
            async for _, record in bb.audit.follow():
                stdout.out(_json(record) if as_json else _line(record), highlight=False)
                sys.stdout.flush()


@app.command("verify")
def verify(name: NameOpt = None, as_json: JsonOpt = False) -> None:
    """Check the hash chain; exit 1 naming the first broken record."""
    run_async(_verify(name, as_json))


async def _verify(name: str | None, as_json: bool) -> None:
    async with open_blackboard(name) as bb:
        result = await bb.audit.verify()
    if as_json:
        stdout.out(json.dumps(result.__dict__, sort_keys=True), highlight=False)
        if not result.ok:
            raise typer.Exit(1)
        return
    if result.ok:
        success(f"audit trail intact: {result.records} records, {result.alg}")
        return
    where = f"record {result.broken_seq}" + (f" (stream entry {result.broken_entry})" if result.broken_entry else "")
    raise HoltError(f"audit trail broken at {where}: {result.reason}")


@app.command("export")
def export(
    name: NameOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="Output format (jsonl).")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write every record out, one JSON object per line, for archiving or an external checker."""
    if fmt != "jsonl":
        raise InvalidInput(f"unknown export format {fmt!r}", hint="use --format jsonl")
    count = run_async(export_audit(name, output))
    if output is not None:
        success(f"exported {count} audit records to {output}")


async def export_audit(name: str | None, output: Path | None) -> int:
    """Export the trail (also used by destroy before it deletes anything). Returns the record count."""
    async with open_blackboard(name) as bb:
        lines = [_json(AuditRecord.from_fields(fields)) async for _, fields in bb.audit.entries()]
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        tmp = output.with_suffix(output.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    return len(lines)
