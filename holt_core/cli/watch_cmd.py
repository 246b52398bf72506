"""``holt watch``: follow the blackboard's activity live (protocol 7.5), with the history first when filtering.

Output from Redis is data, never trusted: human-readable lines are sanitised in ``render``.
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
from holt_core.cli.common import NameOpt, lost_connection, open_blackboard, run_async
from holt_core.cli.output import warn
from holt_core.cli.read_cmds import AgentOpt, SinceOpt, TypeOpt, UntilOpt, output_format, write
from holt_core.embedded_redis import resolve_redis_url
from holt_core.errors import HoltError, MalformedRecord, RedisUnavailable
from holt_core.models import now_ms
from holt_core.render import (
    ArtefactItem,
    DedupeKey,
    OutputFormat,
    WatchItem,
    dedupe_key,
    history_items,
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


def register(app: typer.Typer) -> None:
    """Add ``watch`` to the ``holt`` app."""
    app.command("watch")(watch)


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
    fmt = output_format(output, json_alias=True)
    filt = ArtefactFilter.from_flags(type_glob=type_glob, agent=agent, since=since, until=until, now_ms=now_ms())
    run_async(_Watcher(name, fmt, filt, exit_on_completion=exit_on_completion).run())


def _local_tz() -> tzinfo:
    tz = datetime.now().astimezone().tzinfo
    assert tz is not None  # astimezone() always attaches one
    return tz


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
            write("\n".join(lines) + "\n")
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
