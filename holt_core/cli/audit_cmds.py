"""``holt audit``: read, follow, verify and export the tamper-evident audit trail."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from holt_core.audit import AuditRecord, VerifyResult
from holt_core.audit_anchors import (
    REASON_MANUAL,
    SIGNING_KEY_ENV,
    VERIFY_KEY_ENV,
    AnchorSettings,
    CheckpointFileError,
    check_length,
    generate_signing_key,
    newest,
    read_checkpoints,
    write_private,
)
from holt_core.blackboard import Blackboard
from holt_core.cli.common import JsonOpt, NameOpt, open_blackboard, run_async
from holt_core.cli.output import stdout, success, warn
from holt_core.errors import HoltError, InvalidInput, NotFound
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
def verify(
    name: NameOpt = None,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="Check against the checkpoints in this file (an external copy) instead of the "
        "instance's own checkpoint file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain and that it still reaches every checkpoint; exit 1 with the first problem."""
    run_async(_verify(name, checkpoint, as_json))


async def _verify(name: str | None, checkpoint_file: Path | None, as_json: bool) -> None:
    try:
        async with open_blackboard(name) as bb:
            result = await _verify_open(bb, checkpoint_file)
    except NotFound:
        # Every key of the instance is gone; if it was ever anchored, that is a deleted trail, not a typo.
        if name is None:
            raise
        path = checkpoint_file or AnchorSettings.for_instance(name).path
        try:
            latest = newest(read_checkpoints(path, name))
        except CheckpointFileError:
            latest = None
        problem = check_length(latest, 0)
        if problem is None:
            raise
        raise HoltError(f"audit trail not verified: instance '{name}' is gone but {problem}") from None
    _report(result, as_json)


async def _verify_open(bb: Blackboard, checkpoint_file: Path | None) -> VerifyResult:
    try:
        checkpoints = (read_checkpoints(checkpoint_file, bb.instance) if checkpoint_file is not None
                       else bb.audit.anchor_checkpoints())
    except CheckpointFileError as exc:
        raise HoltError(f"audit trail not verified: {exc}") from None
    if checkpoint_file is not None and not checkpoints:
        raise HoltError(f"audit trail not verified: {checkpoint_file} holds no checkpoint of instance "
                        f"'{bb.instance}'")
    return await bb.audit.verify(checkpoints)


def _report(result: VerifyResult, as_json: bool) -> None:
    if as_json:
        stdout.out(json.dumps(result.__dict__, sort_keys=True), highlight=False)
        if not result.ok:
            raise typer.Exit(1)
        return
    if result.ok:
        anchored = "no checkpoint yet"
        if result.checkpoint_seq is not None and result.checkpoint_ms is not None:
            when = datetime.fromtimestamp(result.checkpoint_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            anchored = f"reaches the checkpoint of record {result.checkpoint_seq} ({when})"
        success(f"audit trail intact: {result.records} records, {result.alg}, {anchored}")
        if result.unwitnessed:
            warn(f"{result.unwitnessed} record(s) naming a person have no witness and predate witnessing on this "
                 "instance: they cannot be told apart from records appended in a person's name")
        return
    if result.broken_seq is None:
        raise HoltError(f"audit trail not verified: {result.reason}")
    where = f"record {result.broken_seq}" + (f" (stream entry {result.broken_entry})" if result.broken_entry else "")
    raise HoltError(f"audit trail broken at {where}: {result.reason}")


@app.command("keygen")
def keygen(path: Annotated[Path, typer.Argument(help="Where to write the private key (0600); the public key "
                                                     "goes next to it as PATH.pub.")]) -> None:
    """Create an Ed25519 key pair for signing audit checkpoints (HOLT_AUDIT_SIGNING_KEY_FILE)."""
    public = generate_signing_key(path)
    success(f"wrote {path} (private, 0600) and {public}")
    stdout.out(f"sign with: export {SIGNING_KEY_ENV}={path}\nverify with: export {VERIFY_KEY_ENV}={public}",
               highlight=False)


@app.command("checkpoint")
def checkpoint(name: NameOpt = None) -> None:
    """Write a signed checkpoint of the trail now (the orchestrator writes one every minute)."""
    run_async(_checkpoint(name))


async def _checkpoint(name: str | None) -> None:
    async with open_blackboard(name) as bb:
        written = await bb.audit.checkpoint(REASON_MANUAL)
        path = bb.audit.anchor.settings.path
    if written is None:
        success("the audit trail is empty: nothing to anchor")
        return
    success(f"checkpoint of record {written.seq} ({written.sig_alg}) appended to {path}")


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
        write_private(output, text)
    return len(lines)
