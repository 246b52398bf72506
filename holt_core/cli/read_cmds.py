"""``holt hoard``, ``holt unearth`` and ``holt watch``: read the blackboard (protocol 7.4, 7.5).

Output from Redis is data, never trusted: human-readable lines are sanitised in ``render``; only
``unearth`` prints a payload byte for byte, and only when stdout is not a terminal.
"""

from __future__ import annotations

import asyncio
import sys
from collections import OrderedDict
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Annotated

import typer

from holt_core.acl import viewer_url
from holt_core.artefact_filter import ArtefactFilter
from holt_core.blackboard import Blackboard, next_message
from holt_core.cli.common import NameOpt, lost_connection, open_blackboard, redis_client, run_async
from holt_core.cli.output import warn
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import HoltError, InvalidInput, MalformedRecord, RedisUnavailable
from holt_core.models import now_ms
from holt_core.render import (
    ArtefactItem,
    DedupeKey,
    OutputFormat,
    WatchItem,
    artefact_pretty_json,
    dedupe_key,
    history_items,
    hoard_jsonl,
    hoard_table,
    is_terminal,
    live_item,
    watch_lines,
)
from holt_core.sanitise import sanitise_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

RECONNECT_INTERVAL_S = 2.0
RECONNECT_TIMEOUT_S = 60.0
# After a reconnect, artefacts this much older than the last sign of life are rescanned too, in case the
# connection died silently before the error surfaced (duplicates are suppressed).
RESCAN_MARGIN_MS = 90_000
_POLL_S = 1.0
_SEEN_LIMIT = 100_000

SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only artefacts created at or after: a duration ago (1h30m) or RFC 3339.")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Only artefacts created at or before: a duration ago or RFC 3339.")
]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Only artefact types matching this glob (Code*).")]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="Only artefacts produced by this agent role.")]


def register(app: typer.Typer) -> None:
    """Add ``hoard``, ``unearth`` and ``watch`` to the ``holt`` app."""
    app.command("hoard")(hoard)
    app.command("unearth")(unearth)
    app.command("watch")(watch)


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
    fmt = _output_format(output, json_alias=False)
    filt = ArtefactFilter.from_flags(type_glob=type_glob, agent=agent, since=since, until=until, now_ms=now_ms())
    run_async(_hoard_list(name, fmt, filt))


def unearth(
    artefact_id: Annotated[str, typer.Argument(metavar="ID", help="Full artefact id or a prefix of 6+ characters.")],
    name: NameOpt = None,
) -> None:
    """Print an artefact's payload exactly as stored (for piping)."""
    run_async(_unearth(name, artefact_id))


def watch(
    name: NameOpt = None,
    output: Annotated[str, typer.Option("--output", "-o", help="default or jsonl (json is an alias).")] = "default",
    since: SinceOpt = None,
    until: UntilOpt = None,
    type_glob: TypeOpt = None,
    agent: AgentOpt = None,
    exit_on_completion: Annotated[
        bool,
        typer.Option("--exit-on-completion", help="Exit after the first Terminal artefact that passes the filters."),
    ] = False,
) -> None:
    """Stream the blackboard's activity live; with filters, show the matching history first."""
    fmt = _output_format(output, json_alias=True)
    filt = ArtefactFilter.from_flags(type_glob=type_glob, agent=agent, since=since, until=until, now_ms=now_ms())
    run_async(_Watcher(name, fmt, filt, exit_on_completion=exit_on_completion).run())


# ---------------------------------------------------------------------------------------------
# Plumbing


def _output_format(value: str, *, json_alias: bool) -> OutputFormat:
    if value == "default":
        return "default"
    if value == "jsonl" or (json_alias and value == "json"):
        return "jsonl"
    valid = "default, jsonl, json" if json_alias else "default, jsonl"
    raise InvalidInput("invalid output format", details=[f"Unknown format: {value}"], hint=f"Valid formats: {valid}")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _local_tz() -> tzinfo:
    tz = datetime.now().astimezone().tzinfo
    assert tz is not None  # astimezone() always attaches one
    return tz


# ---------------------------------------------------------------------------------------------
# hoard / unearth


async def _hoard_list(name: str | None, fmt: OutputFormat, filt: ArtefactFilter) -> None:
    async with open_blackboard(name, light=True) as bb:
        listing = await bb.list_artefacts()  # a record it skips is named on stderr (open_blackboard)
    shown = [a for a in listing.artefacts if filt.matches(a, keep_zero_time=False)]
    _write(hoard_table(shown, bb.instance, now_ms()) if fmt == "default" else hoard_jsonl(shown))


async def _hoard_get(name: str | None, text: str) -> None:
    async with open_blackboard(name, light=True) as bb:
        artefact = await bb.get_artefact(await bb.resolve_artefact_id(text))
    _write(artefact_pretty_json(artefact))


async def _unearth(name: str | None, text: str) -> None:
    url = resolve_redis_url(start=False)
    async with open_blackboard(name, url=url, light=True) as bb:
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
        _write(shown if shown.endswith("\n") or not shown else shown + "\n")
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# ---------------------------------------------------------------------------------------------
# watch


class _SeenKeys:
    """What has been printed, so history, live events and rescans never repeat a line (bounded, oldest out)."""

    def __init__(self, limit: int = _SEEN_LIMIT) -> None:
        self._keys: OrderedDict[DedupeKey, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, key: DedupeKey) -> bool:
        return key in self._keys

    def add(self, key: DedupeKey) -> None:
        self._keys[key] = None
        if len(self._keys) > self._limit:
            self._keys.popitem(last=False)


class _Done(Exception):
    """``--exit-on-completion`` saw its Terminal artefact."""


class _Watcher:
    def __init__(self, name: str | None, fmt: OutputFormat, filt: ArtefactFilter, *, exit_on_completion: bool) -> None:
        self.name = name
        self.fmt = fmt
        self.filt = filt
        self.exit_on_completion = exit_on_completion
        self.tz = _local_tz()
        self.seen = _SeenKeys()

    async def run(self) -> None:
        # As holt-viewer where holt's ACL users exist: Redis itself refuses any write from a watcher.
        async with open_blackboard(self.name, url=viewer_url(resolve_redis_url(start=False)),
                                   client_name="holt-watch", light=True) as bb:
            try:
                await self._loop(bb)
            except _Done:
                return

    async def _loop(self, bb: Blackboard) -> None:
        channels = (bb.keys.artefact_events, bb.keys.claim_events, bb.keys.workflow_events)
        # First pass: history only when filtering (as the Go CLI). After a reconnect: what the outage
        # may have hidden, but never what predates an unfiltered watch.
        rescan_from: int | None = 0 if self.filt.is_active else None
        floor_ms = 0 if self.filt.is_active else now_ms()
        last_alive = now_ms()
        while True:
            try:
                # Subscribe before reading history: anything written meanwhile arrives on the
                # subscription, and the dedupe keys drop what history already showed.
                async with bb.subscribe(*channels) as sub:
                    if rescan_from is not None:
                        await self._history(bb, rescan_from)
                        rescan_from = None
                    last_alive = now_ms()
                    while True:
                        message = await next_message(sub, _POLL_S)
                        last_alive = now_ms()
                        if message is not None:
                            self._live(bb, *message)
            except lost_connection(RedisUnavailable):
                pass  # handled below: announce, wait for Redis, resubscribe and rescan
            _status("⚠️  Connection to blackboard lost. Reconnecting...")
            if not await _wait_for_redis(bb.redis):
                raise RedisUnavailable(
                    f"failed to reconnect to the blackboard after {RECONNECT_TIMEOUT_S:.0f}s",
                    hint="holt redis status shows which Redis holt uses",
                )
            _status("✓ Reconnected to blackboard")
            since_loss = max(last_alive - RESCAN_MARGIN_MS, floor_ms)
            # A rescan that never ran (the connection failed again first) keeps its earlier start.
            rescan_from = since_loss if rescan_from is None else min(rescan_from, since_loss)

    async def _history(self, bb: Blackboard, created_from_ms: int) -> None:
        # Records they skip are named on stderr once each (open_blackboard sets the blackboard's report).
        listing = await bb.list_artefacts()
        claims, _ = await bb.list_claims()
        for item in history_items(listing.artefacts, claims, self.filt, created_from_ms=created_from_ms or None):
            self._emit(item)

    def _live(self, bb: Blackboard, channel: str, data: str) -> None:
        try:
            item = live_item(bb.keys, channel, data, now_ms())
        except MalformedRecord as bad:
            warn(f"Failed to parse event on {sanitise_text(channel)}: {sanitise_text(bad.reason)}")
            return
        if isinstance(item, ArtefactItem) and not self.filt.matches(item.artefact, keep_zero_time=True):
            return
        self._emit(item)

    def _emit(self, item: WatchItem) -> None:
        key = dedupe_key(item)
        if key is not None:
            if key in self.seen:
                return
            self.seen.add(key)
        lines = watch_lines(item, output=self.fmt, tz=self.tz, now_ms=now_ms())
        if lines:
            _write("\n".join(lines) + "\n")
        if self.exit_on_completion and is_terminal(item):
            raise _Done


def _status(message: str) -> None:
    # stderr, so a jsonl stream on stdout stays parseable.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


async def _wait_for_redis(redis: Redis) -> bool:
    """PING until Redis answers (every RECONNECT_INTERVAL_S, for up to RECONNECT_TIMEOUT_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECONNECT_TIMEOUT_S
    while True:
        try:
            if await redis.ping():
                return True
        except lost_connection(OSError, HoltError):  # evaluated after the raise: see loaded_errors
            pass
        if loop.time() + RECONNECT_INTERVAL_S > deadline:
            return False
        await asyncio.sleep(RECONNECT_INTERVAL_S)
