"""The reads of one instance's blackboard that need no record model: scans, pipelined hashes, short ids,
subscriptions, and the report of records that cannot be read (once per key).

``Blackboard`` extends ``BoardReads`` with the models, the writes and the transactions; the CLI's read commands
(hoard, questions, pending) use ``BoardReads`` alone with the light records (``artefact_record``), so they load
neither pydantic models nor the transaction engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from holt_core.errors import AmbiguousId, InvalidInput, MalformedRecord, NotFound, RedisUnavailable
from holt_core.keys import Keys
from holt_core.record_basics import ArtefactFields
from holt_core.redis_conn import route_to
from holt_core.redis_wire import CommandWire, Subscription, loaded_errors, redis_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

MIN_SHORT_ID = 6
_SCAN_COUNT = 1000
_BATCH = 500

A = TypeVar("A", bound=ArtefactFields)


@dataclass
class ArtefactListing(Generic[A]):
    artefacts: list[A] = field(default_factory=list)
    malformed: list[MalformedRecord] = field(default_factory=list)


def _ignore(bad: MalformedRecord) -> None:
    """The default report of an unreadable record (``Blackboard`` logs it; the CLI warns on stderr)."""


class BoardReads:
    """One instance's blackboard, read on one lean connection (``redis_wire``) and the client it is given."""

    def __init__(self, redis: Redis, instance: str) -> None:
        self.redis = redis
        self.keys = Keys(instance)
        self.instance = instance
        route_to(redis, self.keys)  # on a Redis Cluster: to the node serving the instance's slot
        self.wire = CommandWire(redis)
        # Every record a read had to skip (key -> why), reported once each through on_unreadable: a record
        # a foreign client wrote in another shape never blinds a reader, and never goes unmentioned.
        self.unreadable: dict[str, str] = {}
        self.on_unreadable: Callable[[MalformedRecord], None] = _ignore

    def report_unreadable(self, bad: MalformedRecord) -> None:
        """Note a record that cannot be read; the first time for its key, tell ``on_unreadable``."""
        first = bad.key not in self.unreadable
        self.unreadable[bad.key] = bad.reason
        if first:
            self.on_unreadable(bad)

    def release(self) -> None:
        """Close this blackboard's own connection (the redis-py client is the caller's to close)."""
        self.wire.close()

    # ------------------------------------------------------------------ hashes and artefacts

    async def _hgetall(self, key: str) -> dict[str, str]:
        """One hash; a key of another type raises MalformedRecord (and is reported)."""
        try:
            return _hash(await self.wire.call("HGETALL", key))
        except loaded_errors("ResponseError") as exc:
            bad = MalformedRecord(key, _type_error(exc))
            self.report_unreadable(bad)
            raise bad from None

    async def read_artefact(self, artefact_id: str, decode: Callable[[dict[str, str], str], A]) -> A:
        """One artefact, decoded by ``decode(hash, key)``; NotFound when there is none (see ``read_artefacts``)."""
        key = self.keys.artefact(artefact_id)
        raw = await self._hgetall(key)
        if not raw:
            raise NotFound(f"artefact with ID '{artefact_id}' not found")
        return decode(raw, key)

    async def hgetall_many(self, keys: Sequence[str], *,
                           unreadable: list[MalformedRecord] | None = None) -> list[dict[str, str]]:
        """HGETALL of many keys, pipelined in batches (one round trip per batch).

        A key that is not a hash (a foreign client wrote a string there) reads as absent, ``{}``, and is
        reported (``report_unreadable``) and appended to ``unreadable``; the other keys are read as usual."""
        out: list[dict[str, str]] = []
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            replies = await self.wire.call_many([("HGETALL", key) for key in batch])
            for key, reply in zip(batch, replies, strict=True):
                if isinstance(reply, Exception):
                    if not isinstance(reply, redis_errors().ResponseError):
                        raise reply
                    bad = MalformedRecord(key, _type_error(reply))
                    self.report_unreadable(bad)
                    if unreadable is not None:
                        unreadable.append(bad)
                    out.append({})
                    continue
                out.append(_hash(reply))
        return out

    async def artefact_exists(self, artefact_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.artefact(artefact_id)))

    async def scan_artefact_ids(self) -> AsyncIterator[str]:
        """Every artefact id on the blackboard, including ones other clients wrote (no index needed)."""
        async for key in self.redis.scan_iter(match=self.keys.artefact_pattern, count=_SCAN_COUNT):
            artefact_id = self.keys.id_from_artefact_key(key)
            if ":" not in artefact_id:
                yield artefact_id

    async def read_artefacts(self, decode: Callable[[dict[str, str], str], A]) -> ArtefactListing[A]:
        """All artefacts, oldest first, each decoded by ``decode(hash, key)`` (the pydantic ``Artefact.from_hash``
        or the light ``ArtefactRecord.from_hash``); records that do not decode (or are not hashes) are skipped:
        returned in ``malformed`` and reported (``report_unreadable``), never fatal."""
        keys = [self.keys.artefact(i) async for i in self.scan_artefact_ids()]
        listing: ArtefactListing[A] = ArtefactListing()
        for key, raw in zip(keys, await self.hgetall_many(keys, unreadable=listing.malformed), strict=True):
            if not raw:
                continue  # deleted between SCAN and HGETALL, or not a hash (reported)
            try:
                listing.artefacts.append(decode(raw, key))
            except MalformedRecord as bad:
                self.report_unreadable(bad)
                listing.malformed.append(bad)
        listing.artefacts.sort(key=lambda a: (a.created_at_ms, a.id))
        return listing

    async def resolve_artefact_id(self, text: str) -> str:
        """A full id or a unique prefix of at least 6 characters, to the full artefact id."""
        candidate = text.strip().lower()
        if len(candidate) == 36 and candidate.count("-") == 4:
            if not await self.artefact_exists(candidate):
                raise NotFound(f"artefact with ID '{text}' not found")
            return candidate
        if len(candidate) < MIN_SHORT_ID:
            raise InvalidInput(f"short ID must be at least {MIN_SHORT_ID} characters (got {len(candidate)})")
        matches: set[str] = set()
        async for key in self.redis.scan_iter(
            match=self.keys.artefact_prefix_pattern(candidate), count=_SCAN_COUNT
        ):
            artefact_id = self.keys.id_from_artefact_key(key)
            if artefact_id.startswith(candidate) and ":" not in artefact_id:
                matches.add(artefact_id)
        ordered = sorted(matches)
        if not ordered:
            raise NotFound(f"artefact with ID '{text}' not found")
        if len(ordered) > 1:
            raise AmbiguousId(text, ordered, len(ordered))
        return ordered[0]

    # ------------------------------------------------------------------ pub/sub

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:
        """A pub/sub connection subscribed to ``channels`` (confirmed before the body runs)."""
        pubsub = Subscription(self.redis)
        try:
            await pubsub.subscribe(*channels)
            # Wait for the server's confirmations: after this, nothing published is missed.
            await _confirmed(pubsub, channels, None)
            yield pubsub
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
            await pubsub.aclose()


def _type_error(exc: Exception) -> str:
    text = str(exc)
    return "not a hash (a foreign client wrote another type here)" if "WRONGTYPE" in text else text


def _hash(reply: list[str]) -> dict[str, str]:
    """An HGETALL reply (RESP2: names and values in turn) as a dict."""
    values = iter(reply)
    return dict(zip(values, values, strict=True))


async def _confirmed(pubsub: Subscription, channels: Iterable[str], deliver: Callable[[str, str], None] | None) -> None:
    pending = set(channels)
    while pending:
        msg = await pubsub.get_message(timeout=10.0)
        if msg is None:
            raise RedisUnavailable(f"Redis did not confirm the subscription to {sorted(pending)}")
        if msg["type"] == "subscribe":
            pending.discard(str(msg["channel"]))
        elif msg["type"] == "message" and deliver is not None:
            deliver(str(msg["channel"]), str(msg["data"]))


async def next_message(pubsub: Subscription, wait_s: float | None = None) -> tuple[str, str] | None:
    """The next (channel, data) from a subscription, or None on timeout."""
    msg: dict[str, Any] | None = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_s)
    if msg is None:
        return None
    return str(msg["channel"]), str(msg["data"])

