"""``holt hoard`` and ``holt unearth``: read the blackboard (protocol 7.4), and the options ``watch`` shares.

They read through ``BoardReads`` and the light ``ArtefactRecord``: neither the models nor the engine load.
Output from Redis is data, never trusted: human-readable lines are sanitised in ``render_hoard``; only
``unearth`` prints a payload byte for byte, and only when stdout is not a terminal.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from holt_core.artefact_filter import ArtefactFilter
from holt_core.artefact_record import ArtefactRecord
from holt_core.cli.common import NameOpt, open_reads, redis_client, run_async
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import InvalidInput
from holt_core.record_basics import now_ms
from holt_core.render_hoard import OutputFormat, artefact_pretty_json, hoard_jsonl, hoard_table
from holt_core.sanitise import sanitise_text

SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only artefacts created at or after: a duration ago (1h30m) or RFC 3339.")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Only artefacts created at or before: a duration ago or RFC 3339.")
]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Only artefact types matching this glob (Code*).")]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="Only artefacts produced by this agent role.")]


def register(app: typer.Typer) -> None:
    """Add ``hoard`` and ``unearth`` to the ``holt`` app."""
    app.command("hoard")(hoard)
    app.command("unearth")(unearth)


# ---------------------------------------------------------------------------------------------
# Commands


def hoard(
    artefact_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Show one artefact (full id or a prefix of 6+ characters).")
    ] = None,
    name: NameOpt = None,
    output: Annotated[str, typer.Option("--output", "-o", help="default or jsonl (list mode only).")] = "default",
    since: SinceOpt = None,
    until: UntilOpt = None,
    type_glob: TypeOpt = None,
    agent: AgentOpt = None,
) -> None:
    """List the artefacts on the blackboard, or show one as JSON."""
    if artefact_id is not None:
        run_async(_hoard_get(name, artefact_id))
        return
    fmt = output_format(output, json_alias=False)
    filt = ArtefactFilter.from_flags(type_glob=type_glob, agent=agent, since=since, until=until, now_ms=now_ms())
    run_async(_hoard_list(name, fmt, filt))


def unearth(
    artefact_id: Annotated[str, typer.Argument(metavar="ID", help="Full artefact id or a prefix of 6+ characters.")],
    name: NameOpt = None,
) -> None:
    """Print an artefact's payload exactly as stored (for piping)."""
    run_async(_unearth(name, artefact_id))


# ---------------------------------------------------------------------------------------------
# Plumbing


def output_format(value: str, *, json_alias: bool) -> OutputFormat:
    if value == "default":
        return "default"
    if value == "jsonl" or (json_alias and value == "json"):
        return "jsonl"
    valid = "default, jsonl, json" if json_alias else "default, jsonl"
    raise InvalidInput("invalid output format", details=[f"Unknown format: {value}"], hint=f"Valid formats: {valid}")


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# hoard / unearth


async def _hoard_list(name: str | None, fmt: OutputFormat, filt: ArtefactFilter) -> None:
    async with open_reads(name) as board:
        listing = await board.read_artefacts(ArtefactRecord.from_hash)  # a record it skips is named on stderr
    shown = [a for a in listing.artefacts if filt.matches(a, keep_zero_time=False)]
    write(hoard_table(shown, board.instance, now_ms()) if fmt == "default" else hoard_jsonl(shown))


async def _hoard_get(name: str | None, text: str) -> None:
    async with open_reads(name) as board:
        artefact = await board.read_artefact(await board.resolve_artefact_id(text), ArtefactRecord.from_hash)
    write(artefact_pretty_json(artefact))


async def _unearth(name: str | None, text: str) -> None:
    url = resolve_redis_url(start=False)
    async with open_reads(name, url=url) as bb:
        artefact_id = await bb.resolve_artefact_id(text)
        # A second, binary connection: the payload must come out byte for byte, even if it is not UTF-8.
        raw_client = redis_client(url, decode=False)
        try:
            payload = await raw_client.hget(bb.keys.artefact(artefact_id), "payload")
        finally:
            await raw_client.aclose()
    data = payload if isinstance(payload, bytes) else (payload or "").encode()
    if sys.stdout.isatty():
        shown = sanitise_text(data.decode("utf-8", "replace"), keep_newlines=True)
        write(shown if shown.endswith("\n") or not shown else shown + "\n")
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
