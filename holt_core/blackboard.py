"""The async blackboard client: Holt's records in Redis, read and written in Holt's exact format.

Artefacts are write-once. Every write that other processes react to is announced on pub/sub in the same
atomic step (see ``transaction``), after the data.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from holt_core.errors import (
    AlreadyExists,
    AmbiguousId,
    InvalidInput,
    MalformedRecord,
    NotFound,
    RedisUnavailable,
)
from holt_core.keys import Keys
from holt_core.logs import EventLogger
from holt_core.models import (
    Artefact,
    BidType,
    Claim,
    WorkflowEvent,
    WorkflowEventType,
    dumps,
    now_ms,
)
from holt_core.redis_conn import connect_redis as connect_redis  # its home until it had a module of its own
from holt_core.redis_conn import route_to
from holt_core.redis_wire import CommandWire, Subscription, loaded_errors, redis_errors
from holt_core.transaction import Tx, TxResult, TxRunner

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from holt_core.audit import AuditTrail

MIN_SHORT_ID = 6
_SCAN_COUNT = 1000
_BATCH = 500


@dataclass
class ArtefactListing:
    artefacts: list[Artefact] = field(default_factory=list)
    malformed: list[MalformedRecord] = field(default_factory=list)


class Blackboard:
    """One instance's blackboard: the reads and writes of every hop on one lean connection (``redis_wire``),
    everything else through the redis-py client it is given."""

    def __init__(self, redis: Redis, instance: str) -> None:
        self.redis = redis
        self.keys = Keys(instance)
        self.instance = instance
        route_to(redis, self.keys)  # on a Redis Cluster: to the node serving the instance's slot
        self.wire = CommandWire(redis)
        self._tx = TxRunner(self.wire)
        self._audit: AuditTrail | None = None
        # Every record a read had to skip (key -> why), reported once each through on_unreadable: a record
        # a foreign client wrote in another shape never blinds a reader, and never goes unmentioned.
        self.unreadable: dict[str, str] = {}
        self.on_unreadable: Callable[[MalformedRecord], None] = self._log_unreadable
        self._log = EventLogger("blackboard", instance)

    @property
    def audit(self) -> AuditTrail:
        """The instance's audit trail (imported on first use: read-only commands never load it)."""
        if self._audit is None:
            from holt_core.audit import AuditTrail

            self._audit = AuditTrail(self.redis, self.keys, runner=self._tx)
        return self._audit

    def _log_unreadable(self, bad: MalformedRecord) -> None:
        self._log.warning("record_unreadable", key=bad.key, error=bad.reason)

    def report_unreadable(self, bad: MalformedRecord) -> None:
        """Note a record that cannot be read; the first time for its key, tell ``on_unreadable``."""
        first = bad.key not in self.unreadable
        self.unreadable[bad.key] = bad.reason
        if first:
            self.on_unreadable(bad)

    @classmethod
    def from_url(cls, url: str, instance: str) -> Blackboard:
        return cls(connect_redis(url), instance)

    def release(self) -> None:
        """Close this blackboard's own connection (the redis-py client is the caller's to close)."""
        self.wire.close()

    async def close(self) -> None:
        self.release()
        await self.redis.aclose()

    async def run(self, tx: Tx) -> TxResult:
        return await self._tx.run(tx)

    # ------------------------------------------------------------------ artefacts

    def artefact_tx(self, artefact: Artefact, *, add_to_thread: bool = False) -> tuple[Artefact, Tx]:
        """The write-once creation of an artefact as a Tx (callers may add more operations to it)."""
        if artefact.created_at_ms == 0:
            artefact = artefact.model_copy(update={"created_at_ms": now_ms()})
        key = self.keys.artefact(artefact.id)
        tx = Tx().require_absent(key).hset(key, artefact.to_hash())
        tx.zadd(self.keys.artefact_index, artefact.created_at_ms, artefact.id)
        if add_to_thread:
            tx.zadd(self.keys.thread(artefact.logical_id), artefact.version, artefact.id)
        tx.publish(self.keys.artefact_events, artefact.to_json())
        return artefact, tx

    async def create_artefact(
        self,
        artefact: Artefact,
        *,
        add_to_thread: bool = False,
        events: Iterable[WorkflowEvent] = (),
    ) -> Artefact:
        """Write an artefact once; a second write of the same id raises AlreadyExists.

        ``events`` are published on the workflow channel in the same atomic step, after the artefact event.
        """
        artefact, tx = self.artefact_tx(artefact, add_to_thread=add_to_thread)
        for event in events:
            tx.publish(self.keys.workflow_events, event.to_json())
        result = await self.run(tx)
        if not result.ok:
            raise AlreadyExists(f"artefact {artefact.id} already exists; artefacts are immutable")
        return artefact

    async def get_artefact(self, artefact_id: str) -> Artefact:
        raw = await self._hgetall(self.keys.artefact(artefact_id))
        return self._artefact_from(artefact_id, raw)

    async def _hgetall(self, key: str) -> dict[str, str]:
        """One hash; a key of another type raises MalformedRecord (and is reported)."""
        try:
            return _hash(await self.wire.call("HGETALL", key))
        except loaded_errors("ResponseError") as exc:
            bad = MalformedRecord(key, _type_error(exc))
            self.report_unreadable(bad)
            raise bad from None

    def _artefact_from(self, artefact_id: str, raw: dict[str, str]) -> Artefact:
        if not raw:
            raise NotFound(f"artefact with ID '{artefact_id}' not found")
        return Artefact.from_hash(raw, self.keys.artefact(artefact_id))

    async def get_artefacts(self, ids: Sequence[str]) -> list[Artefact | None]:
        """Pipelined fetch; missing ids give None, and so do unreadable records (reported, see ``unreadable``)."""
        keys = [self.keys.artefact(i) for i in ids]
        rows = await self.hgetall_many(keys)
        return [self._decode_artefact(key, raw) if raw else None for key, raw in zip(keys, rows, strict=True)]

    def _decode_artefact(self, key: str, raw: dict[str, str]) -> Artefact | None:
        try:
            return Artefact.from_hash(raw, key)
        except MalformedRecord as bad:
            self.report_unreadable(bad)
            return None

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

    async def list_artefacts(self) -> ArtefactListing:
        """All artefacts, oldest first; records that do not decode (or are not hashes) are skipped: returned in
        ``malformed`` and reported (``report_unreadable``), never fatal."""
        keys = [self.keys.artefact(i) async for i in self.scan_artefact_ids()]
        listing = ArtefactListing()
        for key, raw in zip(keys, await self.hgetall_many(keys, unreadable=listing.malformed), strict=True):
            if not raw:
                continue  # deleted between SCAN and HGETALL, or not a hash (reported)
            try:
                listing.artefacts.append(Artefact.from_hash(raw, key))
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

    # ------------------------------------------------------------------ threads

    async def latest_version(self, logical_id: str) -> tuple[str, int] | None:
        rows: list[Any] = await self.redis.zrevrange(self.keys.thread(logical_id), 0, 0, withscores=True)
        if not rows:
            return None
        member, score = rows[0]
        return str(member), int(score)

    async def thread_versions(self, logical_id: str) -> list[tuple[str, int]]:
        rows: list[Any] = await self.redis.zrange(self.keys.thread(logical_id), 0, -1, withscores=True)
        return [(str(m), int(s)) for m, s in rows]

    # ------------------------------------------------------------------ claims

    def claim_create_tx(self, claim: Claim) -> Tx:
        key = self.keys.claim(claim.id)
        return (
            Tx()
            .require_absent(key)
            .hset(key, claim.to_hash())
            .set(self.keys.claim_by_artefact(claim.artefact_id), claim.id)
            .zadd(self.keys.claim_index, now_ms(), claim.id)
            .publish(self.keys.claim_events, claim.to_json())
        )

    async def create_claim(self, claim: Claim) -> Claim:
        result = await self.run(self.claim_create_tx(claim))
        if not result.ok:
            raise AlreadyExists(f"claim {claim.id} already exists")
        return claim

    def claim_update_tx(self, claim: Claim, *, expect_status: str | None = None) -> Tx:
        """Rewrite all claim fields; with expect_status, only if the stored status still matches."""
        key = self.keys.claim(claim.id)
        tx = Tx()
        if expect_status is not None:
            tx.require_field(key, "status", expect_status)
        return tx.hset(key, claim.to_hash())

    async def update_claim(self, claim: Claim, *, expect_status: str | None = None) -> bool:
        return (await self.run(self.claim_update_tx(claim, expect_status=expect_status))).ok

    async def get_claim(self, claim_id: str) -> Claim:
        return self._claim_from(claim_id, await self._hgetall(self.keys.claim(claim_id)))

    def _claim_from(self, claim_id: str, raw: dict[str, str]) -> Claim:
        if not raw:
            raise NotFound(f"claim with ID '{claim_id}' not found")
        return Claim.from_hash(raw, self.keys.claim(claim_id))

    async def get_claim_and_artefact(self, claim_id: str, artefact_id: str) -> tuple[Claim, Artefact]:
        """A claim and an artefact (its target, when the caller knows the id) in one round trip.

        Raises as get_claim and get_artefact do; the claim's errors come first."""
        keys = [self.keys.claim(claim_id), self.keys.artefact(artefact_id)]
        wrong: list[MalformedRecord] = []
        claim_raw, artefact_raw = await self.hgetall_many(keys, unreadable=wrong)
        for bad in wrong:
            raise bad  # the claim's first: hgetall_many keeps the order of keys
        return self._claim_from(claim_id, claim_raw), self._artefact_from(artefact_id, artefact_raw)

    async def claim_id_for_artefact(self, artefact_id: str) -> str | None:
        value = await self.redis.get(self.keys.claim_by_artefact(artefact_id))
        return str(value) if value else None

    async def scan_claim_ids(self) -> AsyncIterator[str]:
        """Every claim id; ``claim:{id}:bids`` keys match the same pattern and are skipped."""
        async for key in self.redis.scan_iter(match=self.keys.claim_pattern, count=_SCAN_COUNT):
            claim_id = self.keys.id_from_claim_key(key)
            if claim_id is not None:
                yield claim_id

    async def list_claims(self) -> tuple[list[Claim], list[MalformedRecord]]:
        """Every readable claim, and the claim records skipped (reported as ``list_artefacts`` does)."""
        keys = [self.keys.claim(i) async for i in self.scan_claim_ids()]
        claims: list[Claim] = []
        bad: list[MalformedRecord] = []
        for key, raw in zip(keys, await self.hgetall_many(keys, unreadable=bad), strict=True):
            if not raw:
                continue
            try:
                claims.append(Claim.from_hash(raw, key))
            except MalformedRecord as exc:
                self.report_unreadable(exc)
                bad.append(exc)
        return claims, bad

    # ------------------------------------------------------------------ bids

    async def set_bid(self, claim_id: str, agent_name: str, bid: BidType) -> None:
        """Record a bid and announce it (``bid_submitted``) in one atomic step."""
        if not agent_name:
            raise InvalidInput("agent name cannot be empty")
        # The envelope WorkflowEvent.to_json writes, built directly: every agent sends one per claim.
        event = dumps({"event": WorkflowEventType.BID_SUBMITTED.value,
                       "data": {"claim_id": claim_id, "agent_name": agent_name, "bid_type": bid.value}})
        tx = Tx().hset(self.keys.bids(claim_id), {agent_name: bid.value})
        tx.publish(self.keys.workflow_events, event)
        await self.run(tx)

    async def get_bids_many(self, claim_ids: Sequence[str]) -> list[dict[str, str]]:
        return await self.hgetall_many([self.keys.bids(c) for c in claim_ids])

    async def get_bids(self, claim_id: str) -> dict[str, str]:
        return (await self.hgetall_many([self.keys.bids(claim_id)]))[0]

    # ------------------------------------------------------------------ events

    async def publish_workflow_event(self, event: WorkflowEvent) -> None:
        await self.redis.publish(self.keys.workflow_events, event.to_json())

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


async def resubscribe(pubsub: Subscription, channels: Sequence[str], deliver: Callable[[str, str], None], *,
                      within_s: float | None = None) -> None:
    """Bring back a subscription whose connection dropped (Redis closed a lagging subscriber, or restarted):
    ``Subscription.reconnect``, which waits as long as Redis is away unless ``within_s`` is given. Returns once
    every channel is confirmed again, so a catch-up read made afterwards misses nothing; messages that arrive
    meanwhile go to ``deliver``. What was published during the gap is lost to this subscriber: the caller
    reads it back from the data."""
    pubsub.channels.update(dict.fromkeys(channels))
    await pubsub.reconnect(deliver, within_s=within_s)


async def next_message(pubsub: Subscription, wait_s: float | None = None) -> tuple[str, str] | None:
    """The next (channel, data) from a subscription, or None on timeout."""
    msg: dict[str, Any] | None = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_s)
    if msg is None:
        return None
    return str(msg["channel"]), str(msg["data"])

