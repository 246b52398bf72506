"""The one Redis reader of a live attach: subscribe, scan, then follow, handing feed items to a sink.

Order on every (re)connect: subscribe first (confirmed by Redis), then scan the newest page of the
artefact index, then the rest in the background, pumping live messages between pages. Subscribing
before the scan leaves no window in which an event could be lost; keyed upserts make a message that
the scan already covered harmless. After a lost connection the rescan is flagged ``resync`` so the UI
says that events may have been missed while it was away.

Claim state is never taken from an event body: a claim event or a workflow event that names a claim
marks it dirty, and dirty claims are re-read (pipelined, at most every 100 ms), so a late or duplicated
message can never roll a claim back.

Redis going away (a restart) is never fatal: the reader says so (``ConnectionSeen("lost")``), pings with
``redis_wire.Backoff`` until Redis answers again, at the URL that works then (re-read through ``resolve_url``:
a server that came back on another port is found), and re-attaches with a resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from holt_core.artefact_record import HASH_FIELDS, ArtefactRecord, records_from_rows
from holt_core.audit import AuditRecord
from holt_core.blackboard import Blackboard, next_message
from holt_core.cli.common import redis_client
from holt_core.errors import HoltError, MalformedRecord
from holt_core.instances import get_record
from holt_core.lock import is_fresh, lock_value, stamp_seconds
from holt_core.models import Artefact, Claim, WorkflowEvent
from holt_core.redis_wire import Backoff, loaded_errors
from holt_tui.config import TuiConfig
from holt_tui.feed import (
    ArtefactSeen,
    AuditSeen,
    ClaimSeen,
    ClaimState,
    ConnectionSeen,
    DebugSeen,
    FeedItem,
    InboxSeen,
    InstanceInfo,
    InstanceSeen,
    ScanPage,
    WorkflowSeen,
)
from holt_tui.sources import Sources

if TYPE_CHECKING:
    from redis.asyncio import Redis

Sink = Callable[[FeedItem], None]
PAGE = 1000
AUDIT_TAIL = 500
_CLAIM_REFRESH_S = 0.1
_INSTANCE_POLL_S = 2.0
_AUDIT_POLL_S = 0.5


def _lost(*also: type[Exception]) -> tuple[type[Exception], ...]:
    """Redis went away (redis-py's ConnectionError and TimeoutError, imported only once one was raised)."""
    return loaded_errors("ConnectionError", "TimeoutError", also=(OSError, *also))


class Reader:
    def __init__(self, url: str, instance: str, sink: Sink, sources: Sources, config: TuiConfig, *,
                 resolve_url: Callable[[], str | None] | None = None) -> None:
        self.url = url
        self._resolve_url = resolve_url  # the URL that works now, re-read before each reconnection
        self.instance = instance
        self.sink = sink
        self.sources = sources
        self.config = config
        self._seen: set[str] = set()
        self._dirty_claims: set[str] = set()
        self._sources_dirty = False
        self._audit_cursor = "0-0"
        self._roles: tuple[str, ...] = ()
        self._roles_from = ""
        self._sort_gets: tuple[str, ...] | None = None  # SORT_RO's GET arguments (None: HMGET, see _index_page)

    async def run(self) -> None:
        """Attach and follow until cancelled; a lost connection is retried forever, then resynced."""
        resync = False
        while True:
            # The light client (holt_core/redis_conn.py): the reader never needs redis-py, whose import (with
            # OpenTelemetry) would delay the first frame; redis-py's errors are imported only when one is raised.
            redis = redis_client(self.url, client_name="holt-tui", light=True)
            bb = Blackboard(redis, self.instance)
            bb.on_unreadable = lambda bad: self._malformed(bad.key, bad.reason)  # skipped, counted, shown
            fields = (bb.keys.artefact_field_pattern(f) for f in HASH_FIELDS)
            self._sort_gets = ("GET", "#", *(a for pattern in fields for a in ("GET", pattern)))
            try:
                self.sink(ConnectionSeen("connecting"))
                await self._attach(bb, resync=resync)
            except _lost(MalformedRecord, HoltError) as exc:
                self.sink(ConnectionSeen("lost", str(exc)[:200]))
            finally:
                bb.release()  # its own connection too: a long session re-attaches many times
                with contextlib.suppress(Exception):
                    await redis.aclose()
            resync = True
            await self._wait_for_redis()

    async def _wait_for_redis(self) -> None:
        backoff = Backoff()
        while True:
            await asyncio.sleep(backoff.next())
            if self._resolve_url is not None:
                with contextlib.suppress(HoltError, OSError):
                    self.url = self._resolve_url() or self.url
            redis = redis_client(self.url, client_name="holt-tui", light=True)
            try:
                if await redis.ping():
                    return
            except _lost(*loaded_errors("RedisError")):
                pass
            finally:
                with contextlib.suppress(Exception):
                    await redis.aclose()

    async def _attach(self, bb: Blackboard, *, resync: bool) -> None:
        channels = [bb.keys.artefact_events, bb.keys.claim_events, bb.keys.workflow_events,
                    *self.sources.inbox.channels(), *self.sources.debug.channels()]
        async with bb.subscribe(*channels) as sub:
            self.sink(ConnectionSeen("scanning"))
            # The workspace's roles (holt.yml) follow with the next poll, after the first page is on its way.
            self.sink(InstanceSeen(await self._instance_info(bb, roles=False)))

            async def pump() -> None:
                while (message := await next_message(sub, 0)) is not None:
                    self._handle(bb, *message)

            await self._scan(bb, resync=resync, pump=pump)
            await self._refresh_sources()
            self.sink(ConnectionSeen("live"))
            loop = asyncio.get_running_loop()
            next_claims = next_instance = next_audit = loop.time()
            while True:
                message = await next_message(sub, _CLAIM_REFRESH_S)
                if message is not None:
                    self._handle(bb, *message)
                    await pump()
                now = loop.time()
                if self._dirty_claims and now >= next_claims:
                    await self._refresh_claims(bb)
                    next_claims = now + _CLAIM_REFRESH_S
                if self._sources_dirty:
                    await self._refresh_sources()
                if now >= next_audit:
                    await self._poll_audit(bb)
                    next_audit = now + _AUDIT_POLL_S
                if now >= next_instance:
                    self.sink(InstanceSeen(await self._instance_info(bb)))
                    next_instance = now + _INSTANCE_POLL_S

    # -------------------------------------------------------------------------------------- scanning

    async def _scan(self, bb: Blackboard, *, resync: bool, pump: Callable[[], Any]) -> None:
        r: Any = bb.redis
        total = int(await r.zcard(bb.keys.artefact_index))
        first, first_count = await self._index_page(bb, 0, self.config.first_page, newest=True)
        open_ids = sorted(str(i) for i in await r.smembers(bb.keys.open_claims))
        audit = await bb.audit.records(last=AUDIT_TAIL)
        if audit:
            newest = await r.xrevrange(bb.keys.audit, count=1)
            self._audit_cursor = str(newest[0][0]) if newest else self._audit_cursor
        self.sink(ScanPage(first, await self._claims(bb, open_ids), audit, first=True, resync=resync,
                           total_hint=total))
        claim_seen = set(open_ids)
        # The rest oldest first (the index is scored by creation time): parents come before their children, so
        # the model files each artefact under its workflow as it arrives. Artefacts indexed during the scan rank
        # above ``end`` (newer) or are caught by the stray scan below; one read twice is a harmless upsert.
        end = total - first_count
        for start in range(0, end, PAGE):
            await pump()
            records, count = await self._index_page(bb, start, min(PAGE, end - start))
            if not count:
                break
            self.sink(ScanPage(records, []))
        # Artefacts other clients wrote without indexing them (the Go version never adds to the index).
        stray: list[str] = []
        async for a_id in bb.scan_artefact_ids():
            if a_id not in self._seen:
                stray.append(a_id)
        for chunk in _chunks(stray, PAGE):
            await pump()
            self.sink(ScanPage(await self._artefacts(bb, chunk), []))
        claim_ids = [c async for c in bb.scan_claim_ids() if c not in claim_seen]
        for chunk in _chunks(claim_ids, PAGE):
            await pump()
            self.sink(ScanPage([], await self._claims(bb, chunk)))
        self.sink(ScanPage([], [], last=True))

    async def _index_page(self, bb: Blackboard, start: int, count: int, *,
                          newest: bool = False) -> tuple[list[ArtefactRecord], int]:
        """Up to ``count`` artefacts of the index from rank ``start``, oldest first (``newest``: newest first), and
        how many ids the index had there. One ``SORT_RO ... BY nosort LIMIT ... GET # GET artefact:*->field ...``
        names the page and reads the model's fields of each hash server-side: one command a page instead of an
        HMGET per artefact (the per-command cost was most of the reader's time at 100k). SORT_RO is a read command
        (open to the viewer user) and its patterns stay in the instance's hash slot on a cluster; where Redis
        refuses it (before 7.0, or an ACL without full read access), the page is read as ids and HMGETs."""
        if count <= 0:
            return [], 0
        index = bb.keys.artefact_index
        if self._sort_gets is not None:
            reply = (await bb.wire.call_many([("SORT_RO", index, "BY", "nosort", "LIMIT", start, count,
                                               *self._sort_gets, *(("DESC",) if newest else ()))]))[0]
            if type(reply) is list:
                width = len(HASH_FIELDS) + 1
                ids = [str(i) for i in reply[::width]]
                return await self._records(bb, ids, [reply[i + 1 : i + width] for i in range(0, len(reply), width)]), \
                    len(ids)
            self._sort_gets = None  # refused: HMGET from now on
        r: Any = bb.redis
        page = r.zrevrange if newest else r.zrange
        ids = [str(i) for i in await page(index, start, start + count - 1)]
        return await self._artefacts(bb, ids), len(ids)

    async def _artefacts(self, bb: Blackboard, ids: Sequence[str]) -> list[ArtefactRecord]:
        """Light records of these artefacts, in order: HMGET of the model's fields, a page decoded at once."""
        return await self._records(bb, ids, await bb.wire.call_many([("HMGET", bb.keys.artefact(i), *HASH_FIELDS)
                                                                       for i in ids]))

    async def _records(self, bb: Blackboard, ids: Sequence[str], rows: Sequence[Any]) -> list[ArtefactRecord]:
        """Records from the ``HASH_FIELDS`` of these artefacts (``rows``, in order), decoded a page at once.
        What that cannot read plainly (a missing key, a foreign type, an odd value) is read again with HGETALL
        and decoded as before, so a bad record is skipped and named exactly as ``Artefact.from_hash`` says."""
        keys = [bb.keys.artefact(i) for i in ids]
        records = records_from_rows(rows)
        redo = [i for i, rec in enumerate(records) if rec is None]
        if redo:
            for i, raw in zip(redo, await bb.hgetall_many([keys[i] for i in redo]), strict=True):
                if not raw:
                    continue
                try:
                    records[i] = ArtefactRecord.from_hash(raw, keys[i])
                except MalformedRecord as bad:
                    self._malformed(keys[i], bad.reason)
        out = [rec for rec in records if rec is not None]
        self._seen.update(rec.id for rec in out)
        return out

    async def _claims(self, bb: Blackboard, ids: Sequence[str]) -> list[ClaimState]:
        out: list[ClaimState] = []
        for chunk in _chunks(list(ids), 500):
            replies = await bb.wire.call_many([("HGETALL", key) for c in chunk
                                               for key in (bb.keys.claim(c), bb.keys.bids(c))])
            for i, c in enumerate(chunk):
                flat_raw, flat_bids = replies[2 * i], replies[2 * i + 1]
                if isinstance(flat_raw, Exception) or isinstance(flat_bids, Exception):
                    self._malformed(bb.keys.claim(c), "not a hash (a foreign client wrote another type here)")
                    continue
                raw, bids = _hash(flat_raw), _hash(flat_bids)
                if not raw:
                    continue
                try:
                    claim = Claim.from_hash(raw, bb.keys.claim(c))
                except MalformedRecord as bad:
                    self._malformed(bb.keys.claim(c), bad.reason)
                    continue
                created = str(raw.get("holt_created_at_ms", ""))
                out.append(ClaimState(claim, {str(k): str(v) for k, v in bids.items()}, str(raw.get("holt_note", "")),
                                      int(created) if created.isdigit() else 0))
        return out

    def _malformed(self, where: str, reason: str) -> None:
        self.sink(WorkflowSeen(WorkflowEvent(event="malformed_record", data={"key": where, "reason": reason}),
                               self.config.clock_ms()))

    # -------------------------------------------------------------------------------------- live

    def _handle(self, bb: Blackboard, channel: str, data: str) -> None:
        keys = bb.keys
        try:
            if channel == keys.artefact_events:
                a = Artefact.from_json(data)
                self._seen.add(a.id)
                self.sink(ArtefactSeen(ArtefactRecord.of(a)))
            elif channel == keys.claim_events:
                obj = json.loads(data)
                if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                    self._dirty_claims.add(obj["id"])
            elif channel == keys.workflow_events:
                event = WorkflowEvent.from_json(data)
                for name in ("claim_id", "feedback_claim_id"):
                    value = event.data.get(name)
                    if isinstance(value, str) and value:
                        self._dirty_claims.add(value)
                self.sink(WorkflowSeen(event, self.config.clock_ms()))
            else:
                self._sources_dirty = True
        except (MalformedRecord, json.JSONDecodeError) as bad:
            self._malformed(channel, getattr(bad, "reason", str(bad)))

    async def _refresh_claims(self, bb: Blackboard) -> None:
        ids = sorted(self._dirty_claims)
        self._dirty_claims.clear()
        for state in await self._claims(bb, ids):
            self.sink(ClaimSeen(state))

    async def _poll_audit(self, bb: Blackboard) -> None:
        r: Any = bb.redis
        reply = await r.xread({bb.keys.audit: self._audit_cursor}, count=500)
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self._audit_cursor = str(entry_id)
                try:
                    record = AuditRecord.from_fields({str(k): str(v) for k, v in fields.items()})
                except (KeyError, ValueError):
                    continue
                self.sink(AuditSeen(record))

    async def _refresh_sources(self) -> None:
        self._sources_dirty = False
        self.sink(InboxSeen(await self.sources.inbox.snapshot()))
        self.sink(DebugSeen(await self.sources.debug.snapshot()))

    async def _instance_info(self, bb: Blackboard, *, roles: bool = True) -> InstanceInfo:
        record = await get_record(bb.redis, self.instance)
        lock = await lock_value(bb.redis, bb.keys)
        seen_ms = (stamp_seconds(lock) or 0) * 1000
        workspace = record.workspace_path if record else ""
        if roles and workspace and workspace != self._roles_from:
            from holt_core.config import load_config  # yaml and the config models: not before the first page

            self._roles_from = workspace
            with contextlib.suppress(HoltError, OSError):
                self._roles = tuple(sorted(load_config(Path(workspace)).agents))
        return InstanceInfo(
            name=self.instance,
            status=record.status if record else "unknown",
            workspace=workspace,
            orchestrator_alive=is_fresh(lock),
            orchestrator_seen_ms=seen_ms,
            roles=self._roles,
        )


def _hash(flat: list[str]) -> dict[str, str]:
    """An HGETALL reply from the wire (field, value, ...) as a dict."""
    values = iter(flat)
    return dict(zip(values, values, strict=True))


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def check_attach(url: str, instance: str) -> None:
    """Fail fast, with one line, when Redis is unreachable or the instance is unknown (before the UI starts)."""
    from holt_core.cli.common import connection_failed
    from holt_core.instances import resolve_instance

    redis: Redis = redis_client(url, client_name="holt-tui", light=True)
    try:
        await redis.ping()
        await resolve_instance(redis, instance)
    except _lost() as exc:
        raise connection_failed(exc) from None
    except loaded_errors("RedisError") as exc:
        raise HoltError(f"Redis refused the request: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
